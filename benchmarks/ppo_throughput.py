"""MaskablePPO training speed: slot-steps per CPU-second, flat against factored actions.

    python benchmarks/ppo_throughput.py                  # default world, 20k slot-steps each
    python benchmarks/ppo_throughput.py --timesteps 40000 --n-agents 10 --view-size 4

Trains the same world (``baselines/train_ppo.py``'s defaults: 2 communities, all residents
learners, scripted background, MLP 128-128, n_steps 64, batch 800, 4 epochs, one torch thread)
in two set-ups (and a middle row, below), in one run:

* **before**: the flat catalogue (a ``Discrete`` head of 1573 logits at the defaults) and
  sb3-contrib's plain rollout buffer, which learns from every slot, padding included;
* **after**: the factored action (a ``MultiDiscrete`` head, 76 logits at the defaults, with
  cheap-talk messages) and ``SeatedRolloutBuffer`` (``civa_env.envs.sb3.maskable_ppo``),
  which leaves vacant seats' padding out of the minibatches, with ``FactoredMlpPolicy``
  (``civa_env.envs.sb3_policy``: sb3-contrib's masked MultiDiscrete head computed without
  its per-component ``Categorical`` objects; the same numbers to the bit).

A middle row trains the after set-up with sb3-contrib's own ``MaskableActorCriticPolicy``,
to show what each change brings; it learns exactly what the after row learns.

It reports slot-steps per CPU-second (``time.process_time``: steadier than wall time on a
shared machine), the share of the CPU time spent in the environment (``step_wait``), and the
share of slot-steps that were padding. Figures compare within one run only. Results:
``benchmarks/results/ppo_throughput.md`` (after / before 3.2x to 4x at the defaults).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from civa_env import Config
from civa_env.envs.sb3 import CivaVecEnv, maskable_ppo


class _Timed(CivaVecEnv):
    """CivaVecEnv that adds up the CPU time of its steps and counts padded slot-steps."""

    env_cpu = 0.0
    padded = 0
    slot_steps = 0

    def step_wait(self) -> Any:
        t = time.process_time()
        out = super().step_wait()
        self.env_cpu += time.process_time() - t
        self.padded += int((~self.last_seated).sum())
        self.slot_steps += self.num_envs
        return out


def measure(mode: str, seated: bool, cfg: Config, timesteps: int, seed: int = 0,
            policy: Any = "MlpPolicy") -> dict:
    """Train ``timesteps`` slot-steps; the row's figures."""
    from sb3_contrib import MaskablePPO

    venv = _Timed(cfg, n_envs=2, background="scripted", seed=seed, action_mode=mode)
    kwargs = dict(learning_rate=1e-3, n_steps=64, batch_size=800, n_epochs=4, gamma=0.95,
                  policy_kwargs={"net_arch": [128, 128]}, seed=seed, verbose=0, device="cpu")
    model = (maskable_ppo(venv, policy, **kwargs) if seated
             else MaskablePPO(policy, venv, **kwargs))
    t = time.process_time()
    model.learn(timesteps)
    cpu = time.process_time() - t
    return {"mode": mode, "policy": policy, "steps": model.num_timesteps, "cpu": cpu,
            "rate": model.num_timesteps / cpu, "env_share": venv.env_cpu / cpu,
            "padding": venv.padded / max(venv.slot_steps, 1),
            "head": int(venv.action_space.n) if mode == "flat"
            else int(venv.action_space.nvec.sum())}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--n-agents", type=int, default=25)
    parser.add_argument("--view-size", type=int, default=24)
    parser.add_argument("--n-factories", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = Config(n_agents=args.n_agents, view_size=args.view_size, n_factories=args.n_factories,
                 known_at_start=min(2, args.n_factories), reward="survival", obs_mode="numeric")
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    rows = [measure("flat", False, cfg, args.timesteps),
            measure("factored", True, cfg, args.timesteps, policy=MaskableActorCriticPolicy),
            measure("factored", True, cfg, args.timesteps)]
    labels = ["before: flat, every slot",
              "factored, seated slots only, sb3-contrib's masked head",
              "after: factored, seated slots only, FactoredMlpPolicy"]
    print("| set-up | action head (logits) | slot-steps | CPU s | slot-steps per CPU-s "
          "| share of CPU in the env | padded slot-steps |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in zip(labels, rows, strict=True):
        print(f"| {label} | {r['head']} | {r['steps']:,} | {r['cpu']:.1f} | {r['rate']:,.0f} "
              f"| {r['env_share']:.0%} | {r['padding']:.0%} |")
    print(f"\nafter / before: {rows[2]['rate'] / rows[0]['rate']:.2f}x slot-steps per CPU-second "
          f"(sb3-contrib's head: {rows[1]['rate'] / rows[0]['rate']:.2f}x)")


if __name__ == "__main__":
    main()
