"""Train CIVA residents with PPO or MaskablePPO (stable-baselines3 / sb3-contrib), CleanRL style.

One policy is shared by all the residents it controls (parameter sharing): each resident is a
slot of ``civa_env.envs.sb3.CivaVecEnv``; the rest of the community is played by a
background policy (``scripted`` by default). The run folder gets:

* ``progress.csv``: SB3's training log (episode return, losses, fps) per rollout;
* ``communities.csv``: the metrics (nAUP, SC, ED, IC, CC, ...) of every community episode
  finished during training, with the timestep;
* ``checkpoints/step_<n>.zip`` every ``--checkpoint-every`` steps and ``model.zip`` at
  the end (each with its world shape in ``civa.json``; load with
  ``make_policy("ppo:<zip>")`` or ``civa run --policy ppo:<zip>``);
* ``eval.json`` / ``eval.md``: communities of all-PPO, all-random, all-scripted and mixed
  residents compared on nAUP, SC, ED, IC, CC and each policy's return;
* ``curves.png``: the training curves; ``args.json``: the arguments.

A useful policy in about 4 minutes of CPU time (community reward, baseline values)::

    python baselines/train_ppo.py --reward community --total-timesteps 300000

Smaller and faster (a 10-resident world, about a minute)::

    python baselines/train_ppo.py --n-agents 10 --view-size 4 --n-factories 3 \\
        --total-timesteps 40000 --eval-episodes 5
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from civa_env import Config
from civa_env.world.config import default_factories


@dataclass
class Args:
    exp_name: str = "ppo"
    """experiment name (run folder: ``<out-dir>/<exp-name>__<condition>__<reward>__<seed>``)"""
    out_dir: str = "runs/rl"
    """where run folders go"""
    seed: int = 0
    """seed of the communities, the controller draws and the network"""
    algo: str = "maskable_ppo"
    """``maskable_ppo`` (sb3-contrib, reads the action masks) or ``ppo`` (SB3, unmasked)"""
    action_mode: str = "factored"
    """``factored`` (a MultiDiscrete of the action's components, cheap-talk messages
    included: learners can message) or ``flat`` (the 1573-way catalogue id, no messages)"""
    seated_only: bool = True
    """learn only from slots that held a resident (maskable_ppo: vacant seats' padding is
    stepped but left out of the minibatches)"""

    # World: these fields map onto Config fields of the same name, with Config's defaults.
    condition: str = Config.condition
    """value condition of the residents: ``baseline``, ``with:<value>``, ``without:<value>``"""
    prevalence: float = Config.prevalence
    """share of residents holding the condition"""
    reward: str = "survival"
    """training reward: ``survival``, ``wealth`` or ``community`` (the env's default is
    ``wealth``; survival trains fastest)"""
    n_agents: int = Config.n_agents
    """residents at the start of an episode"""
    max_days: int = Config.max_days
    """days per episode"""
    n_factories: int | None = Config.n_factories
    """factories (default: derived from n_agents, README "Worlds that scale"; up to
    factory_slots, 8, they fix the action catalogue)"""
    view_size: int = Config.view_size
    """residents each one sees (fixes features and catalogue)"""

    # Who the learner lives with
    n_envs: int = 2
    """communities run side by side in the vector env"""
    learner_fraction: float = 1.0
    """share of each community's founders the learner controls (1.0 = self-play)"""
    background: str = "scripted"
    """policy of the other residents (and of learner newcomers when the seats are full)"""
    seats: int = 0
    """learner seats per community (0 = the learner's founders)"""

    # Algorithm
    total_timesteps: int = 300_000
    """learner slot-steps to train for"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    n_steps: int = 64
    """days per rollout per slot"""
    batch_size: int = 800
    """minibatch size"""
    n_epochs: int = 4
    """epochs per rollout"""
    gamma: float = 0.95
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip_range: float = 0.2
    """PPO clip"""
    ent_coef: float = 0.0
    """entropy bonus"""
    net_arch: str = "128,128"
    """hidden layer sizes of the policy and value networks"""
    torch_threads: int = 1
    """torch CPU threads (1 is fastest for these small networks)"""

    # Logging, checkpoints, evaluation
    checkpoint_every: int = 100_000
    """save a checkpoint every this many timesteps (0 = only the final one)"""
    eval_episodes: int = 10
    """community episodes per evaluated population (0 = skip evaluation)"""
    eval_seed: int = 10_000
    """first seed of the evaluation episodes (disjoint from training seeds)"""
    deterministic: bool = False
    """evaluate with the most likely action instead of sampling"""
    plot: bool = True
    """write curves.png"""
    verbose: int = 0
    """SB3 verbosity (1 prints a table per rollout)"""


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field (CleanRL/tyro style help texts)."""
    try:
        tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    except OSError:
        return {}
    docs: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            body = node.body
            for a, b in zip(body, body[1:], strict=False):
                if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                        and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)):
                    docs[a.target.id] = str(b.value.value)
    return docs


def parse_args(argv: list[str] | None = None) -> Args:
    """``Args`` from the command line (``--total-timesteps 1000`` style)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs = _field_docs(Args)
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        kind = int if f.default is None else type(f.default)  # (None: n_factories, an int)
        if kind is bool:
            parser.add_argument(flag, dest=f.name, default=f.default, help=docs.get(f.name),
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(flag, dest=f.name, default=f.default, type=kind,
                                help=docs.get(f.name))
    ns = parser.parse_args(argv)
    args = Args(**vars(ns))
    if args.algo not in ("maskable_ppo", "ppo"):
        parser.error(f"--algo must be maskable_ppo or ppo, got {args.algo!r}")
    if args.action_mode not in ("factored", "flat"):
        parser.error(f"--action-mode must be factored or flat, got {args.action_mode!r}")
    return args


WORLD_FIELDS = ("condition", "prevalence", "reward", "n_agents", "max_days", "n_factories",
                "view_size")  # the Args fields passed on to Config (``seed`` is the training's)


def world_config(args: Args) -> Config:
    """The training world's ``Config``: the ``WORLD_FIELDS`` of ``args``, numeric
    observations, and no more factories known at the start than there are."""
    n_factories = (args.n_factories if args.n_factories is not None
                   else default_factories(args.n_agents))
    return Config(**{name: getattr(args, name) for name in WORLD_FIELDS},
                  known_at_start=min(Config.known_at_start, n_factories),
                  obs_mode="numeric")


def run_name(args: Args) -> str:
    """``<exp>__<condition>__<reward>__<seed>`` with ':' made path-safe."""
    return f"{args.exp_name}__{args.condition.replace(':', '-')}__{args.reward}__{args.seed}"


def make_model(args: Args, venv: Any) -> Any:
    """A fresh PPO or MaskablePPO on ``venv``."""
    arch = [int(x) for x in args.net_arch.split(",") if x]
    kwargs = dict(learning_rate=args.learning_rate, n_steps=args.n_steps,
                  batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=args.gamma,
                  gae_lambda=args.gae_lambda, clip_range=args.clip_range, ent_coef=args.ent_coef,
                  policy_kwargs={"net_arch": arch}, seed=args.seed, verbose=args.verbose,
                  device="cpu")
    if args.algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        if args.seated_only:
            from civa_env.envs.sb3 import maskable_ppo

            return maskable_ppo(venv, **kwargs)
        return MaskablePPO("MlpPolicy", venv, **kwargs)
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", venv, **kwargs)


def _callback(args: Args, cfg: Any, venv: Any, run_dir: Path) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    from civa_env.policies.sb3 import save_checkpoint

    class CivaLogger(BaseCallback):
        """Community metrics into communities.csv and the SB3 log; periodic checkpoints."""

        def __init__(self) -> None:
            super().__init__()
            self.file = open(run_dir / "communities.csv", "w", newline="", encoding="utf-8")
            self.writer: csv.DictWriter | None = None
            self.next_checkpoint = args.checkpoint_every or math.inf

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_checkpoint:
                save_checkpoint(self.model, run_dir / "checkpoints" / f"step_{self.num_timesteps}",
                                cfg, extra=_meta(args, self.num_timesteps))
                self.next_checkpoint += args.checkpoint_every
            return True

        def _on_rollout_end(self) -> None:
            done, venv.finished_communities[:] = list(venv.finished_communities), []
            for row in done:
                row = {"timesteps": self.num_timesteps, **row}
                if self.writer is None:
                    self.writer = csv.DictWriter(self.file, fieldnames=list(row),
                                                 extrasaction="ignore")
                    self.writer.writeheader()
                self.writer.writerow(row)
            self.file.flush()
            if done:
                for key in ("nAUP", "SC", "ED", "CC"):
                    self.logger.record(f"civa/{key}", float(np.mean([r[key] for r in done])))

        def _on_training_end(self) -> None:
            self.file.close()

    return CivaLogger()


def _meta(args: Args, timesteps: int) -> dict[str, Any]:
    return {"condition": args.condition, "prevalence": args.prevalence, "reward": args.reward,
            "timesteps": int(timesteps), "train_args": dataclasses.asdict(args)}


def train(args: Args) -> dict[str, Any]:
    """Train, save, evaluate and plot; returns what ``summary.json`` holds."""
    import torch
    from stable_baselines3.common.logger import configure

    from civa_env.envs.sb3 import CivaVecEnv
    from civa_env.policies.sb3 import save_checkpoint
    from civa_env.world.day import shape_signature

    torch.set_num_threads(args.torch_threads)
    cfg = world_config(args)
    run_dir = Path(args.out_dir) / run_name(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2) + "\n")
    venv = CivaVecEnv(cfg, n_envs=args.n_envs, learner_fraction=args.learner_fraction,
                      background=args.background, seats=args.seats or None, seed=args.seed,
                      action_mode=args.action_mode)
    model = make_model(args, venv)
    model.set_logger(configure(str(run_dir), ["csv"] + (["stdout"] if args.verbose else [])))
    print(f"training {args.algo} on {cfg.n_agents} residents x {args.n_envs} communities "
          f"({venv.num_envs} learner slots, "
          f"{venv.catalogue.size if args.action_mode == 'flat' else venv.spec.nvec.tolist()} "
          f"{args.action_mode} actions, "
          f"{venv.n_features} features), reward={args.reward}, condition={args.condition}")
    start, cpu_start = time.time(), time.process_time()
    model.learn(args.total_timesteps, callback=_callback(args, cfg, venv, run_dir))
    wall = time.time() - start
    cpu = time.process_time() - cpu_start  # robust to other processes sharing the CPUs
    final = save_checkpoint(model, run_dir / "model.zip", cfg,
                            extra=_meta(args, model.num_timesteps))
    venv.close()
    summary = {
        "run_dir": str(run_dir), "checkpoint": str(final), "algo": args.algo,
        "wall_time_s": round(wall, 1), "cpu_time_s": round(cpu, 1),
        "timesteps": int(model.num_timesteps),
        "slot_steps_per_s": round(model.num_timesteps / wall, 1),
        "learner_steps_per_s": round(venv.learner_steps / wall, 1),
        "resident_steps_per_s": round(venv.total_steps / wall, 1),
        "slot_steps_per_cpu_s": round(model.num_timesteps / cpu, 1),
        "learner_steps_per_cpu_s": round(venv.learner_steps / cpu, 1),
        "shape": shape_signature(cfg),
    }
    print(f"trained {model.num_timesteps} steps in {wall:.0f} s ({cpu:.0f} s CPU): "
          f"{summary['slot_steps_per_s']} slot-steps/s, "
          f"{summary['learner_steps_per_s']} learner resident-steps/s, "
          f"{summary['resident_steps_per_s']} resident-steps/s (all residents)")
    if args.eval_episodes > 0:
        summary["eval"] = evaluate(final, cfg, args, run_dir)
    if args.plot:
        plot_curves(run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


POPULATIONS = {
    "all PPO": [("ppo", 1.0)],
    "all scripted": [("scripted", 1.0)],
    "all random": [("random", 1.0)],
    "mixed thirds": [("ppo", 1 / 3), ("scripted", 1 / 3), ("random", 1 / 3)],
    "PPO + random": [("ppo", 0.5), ("random", 0.5)],
}


def evaluate(checkpoint: str | Path, cfg: Any, args: Args, run_dir: Path | None = None,
             populations: dict[str, list[tuple[str, float]]] | None = None) -> dict[str, Any]:
    """Play ``args.eval_episodes`` episodes per population; mean metrics per population.

    The PPO residents are loaded from ``checkpoint`` through the ``ppo`` policy (the path a
    user takes), so this also checks the saved file.
    """
    from civa_env.policies import make_policy

    populations = populations or POPULATIONS
    option = "@deterministic" if args.deterministic else ""
    out: dict[str, Any] = {}
    for label, members in populations.items():
        policies = {name: make_policy(f"ppo:{checkpoint}{option}" if name == "ppo" else name,
                                      seed=args.eval_seed) for name, _ in members}
        records = play(cfg, dict(members), policies, args.eval_episodes, args.eval_seed)
        keys = [k for k, v in records[0].items() if isinstance(v, (int, float)) and k != "seed"]
        row: dict[str, Any] = {k: float(np.mean([r[k] for r in records])) for k in keys}
        row["nAUP_sd"] = float(np.std([r["nAUP"] for r in records]))
        row["by_policy"] = {
            name: {k: float(np.mean([r["by_policy"][name][k] for r in records
                                     if name in r["by_policy"]]))
                   for k in ("residents", "mean_return", "survival", "mean_wealth_end")}
            for name, _ in members}
        out[label] = row
    if run_dir is not None:
        (run_dir / "eval.json").write_text(json.dumps(out, indent=2) + "\n")
        (run_dir / "eval.md").write_text(eval_table(out, cfg.reward) + "\n")
        print(eval_table(out, cfg.reward))
    return out


def play(cfg: Any, mix: dict[str, float], policies: dict[str, Any], episodes: int,
         seed: int) -> list[dict[str, Any]]:
    """Whole episodes in the step loop (``experiments.runner.run_communities``, no run folders).

    The episodes (seeds ``seed``, ``seed + 1``, ...) run side by side; founders are assigned
    to the policies of ``mix`` as in ``civa run`` and newcomers take their parent's policy.

    Returns:
        One record per episode: the community metrics (``envs.sb3.SUMMARY_KEYS``, behaviour
        rates), ``seed`` and ``by_policy``: the scalars of the runner's per-policy breakdown
        (``residents``, ``survival``, ``mean_wealth_end`` of the living, ...) plus
        ``mean_return``, the policy's mean resident return in the config's reward.
    """
    from civa_env.envs.sb3 import scalar_summary
    from civa_env.experiments.runner import run_communities

    results = run_communities([cfg] * episodes, [seed + e for e in range(episodes)], mix, None,
                              policies=policies, progress=False, plots=False)
    records = []
    for result in results:
        returns = resident_returns(result, cfg)
        by_policy = {}
        for label, group in result.summary["by_policy"].items():
            mine = [returns[a] for a, r in result.residents.items() if r["policy"] == label]
            by_policy[label] = {**{k: v for k, v in group.items() if isinstance(v, (int, float))},
                                "mean_return": float(np.mean(mine))}
        records.append({**scalar_summary(result.summary), "seed": result.seed,
                        "by_policy": by_policy})
    return records


def resident_returns(result: Any, cfg: Any) -> dict[str, float]:
    """Each resident's return in ``cfg.reward``, rebuilt from a finished ``RunResult``.

    A resident born on day b is rewarded on days b+1 to its last day (its death, or the run's
    last day). ``survival``: +1 a day, -1 on the day it died. ``community``: the population
    after each of those days over ``n_agents``. ``wealth``: the daily changes telescope to its
    last wealth minus its wealth at birth (founders': a reset with the run's seed;
    newcomers': ``newcomer_wealth``).
    """
    from civa_env.envs.parallel import CivaEnv
    from civa_env.world.events import agent_index

    last_day = int(result.summary["days"])
    population = np.zeros(last_day + 1)
    series = np.asarray(result.summary["population"][:last_day], np.float64)
    population[1: len(series) + 1] = series
    if cfg.reward == "wealth":
        env = CivaEnv(cfg)
        env.reset(seed=result.seed)
        start_wealth = env.world.state.wealth.copy()
        env.close()
    out = {}
    for name, r in result.residents.items():
        died = r["died_day"] is not None
        born, end = r["born_day"], r["died_day"] if died else last_day
        if cfg.reward == "survival":
            out[name] = float(max(end - born, 0) - 2 * died)
        elif cfg.reward == "community":
            out[name] = float(population[born + 1: end + 1].sum() / cfg.n_agents)
        else:
            first = (cfg.newcomer_wealth if r["parent"] is not None
                     else float(start_wealth[agent_index(name)]))
            out[name] = float(r["wealth"] - first) if end > born else 0.0
    return out


def eval_table(results: dict[str, Any], reward: str) -> str:
    """Markdown tables: community metrics per population, then returns per policy."""
    lines = ["| population | nAUP (sd) | SC | ED | IC | CC | final pop. | coop/res-day | "
             "betrayal/res-day |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['nAUP']:.3f} ({r['nAUP_sd']:.3f}) | {r['SC']:.2f} | "
                     f"{r['ED']:.2f} | {r['IC']:.2f} | {r['CC']:.2f} | "
                     f"{r['final_population']:.1f} | {r['cooperation_per_resident_day']:.3f} | "
                     f"{r['betrayal_per_resident_day']:.3f} |")
    lines += ["", f"| population | policy | residents | mean {reward} return | survived | "
              "final wealth (living) |", "|---|---|---|---|---|---|"]
    for label, r in results.items():
        for name, p in r["by_policy"].items():
            lines.append(f"| {label} | {name} | {p['residents']:.1f} | {p['mean_return']:.2f} | "
                         f"{p['survival']:.2f} | {p['mean_wealth_end']:.1f} |")
    return "\n".join(lines)


def plot_curves(run_dir: Path) -> Path | None:
    """curves.png: mean episode return and community nAUP against timesteps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    progress = _read_csv(run_dir / "progress.csv")
    communities = _read_csv(run_dir / "communities.csv")
    if not progress and not communities:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    xs = [float(r["time/total_timesteps"]) for r in progress if r.get("rollout/ep_rew_mean")]
    ys = [float(r["rollout/ep_rew_mean"]) for r in progress if r.get("rollout/ep_rew_mean")]
    axes[0].plot(xs, ys)
    axes[0].set(xlabel="timesteps", ylabel="mean resident return (last 100)",
                title="training return")
    if communities:
        t = np.array([float(r["timesteps"]) for r in communities])
        naup = np.array([float(r["nAUP"]) for r in communities])
        axes[1].plot(t, naup, ".", alpha=0.3, label="episode")
        k = max(1, len(naup) // 20)
        smooth = np.convolve(naup, np.ones(k) / k, mode="valid")
        axes[1].plot(t[k - 1:], smooth, label=f"mean of {k}")
        axes[1].legend()
    axes[1].set(xlabel="timesteps", ylabel="nAUP", title="community nAUP while training")
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    out = run_dir / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = parse_args(argv)
    summary = train(args)
    print(f"checkpoint: {summary['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
