"""Environment throughput: resident-steps per second with random valid actions.

    python benchmarks/env_throughput.py            # 25, 100 and 1000 residents, text on/off
    python benchmarks/env_throughput.py --sizes 100 --seconds 5
    python benchmarks/env_throughput.py --sizes 25 --modes numeric --vector 64x25,16x1000

The second table (``--vector``, default ``64x25,16x1000``; ``--vector ""`` skips it) sets the
vector API (``civa_env.vector_env``: E communities of N residents, factored actions drawn
uniformly from the component masks, no messages) beside the ParallelEnv in numeric mode at
the same community size, in resident-steps per CPU-second (``time.process_time`` of the step
calls only: steadier than wall time on a shared machine), measured in the same run, for
``--seconds`` and at least ``--min-steps`` batch steps (3: a step of 1000 x 1000 takes
longer than the seconds; those are its first days, nearly everyone alive, while the
ParallelEnv's figure is over whole episodes, a quarter of the founders alive on average,
so compare such a row with care). With
magent2 importable (``pip install magent2``; ``--peer-python`` runs it with another
interpreter, e.g. a venv of its own), a last row gives its ``battle_v4`` (C++ core, random
actions, map 45) in agent-steps per CPU-second of ``env.step``, measured in the same run.
``--rounds 5`` then measures the first ``--vector`` batch, the ParallelEnv and the peer
side by side five times, interleaved, and prints the medians (the figures of one round
move by more than 10% on a shared machine). ``--baseline DIR`` adds, in every round, the
ParallelEnv of another checkout of CIVA (DIR: its root, e.g. a git worktree of an older
revision; measured in a subprocess that imports ``civa_env`` from there, same loop, numeric,
at the batch's community size), so that a speed-up is stated against older code measured on
the same machine in the same run:

    git worktree add /tmp/civa-2e66c9f 2e66c9f   # the core when the speed issue was filed
    python benchmarks/env_throughput.py --sizes 25 --modes numeric --vector 64x25 \
        --rounds 5 --baseline /tmp/civa-2e66c9f

For each size and observation mode it plays whole episodes with uniformly random valid flat
actions (vectorised over the action masks) and reports resident-steps per second of
``env.step`` alone and of the whole loop, the share of step time spent building text
(measured per resident in a separate pass over the same states), and the bytes allocated per
step per resident (tracemalloc peak during one step, divided by the residents in it).
Figures are comparable only within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

import numpy as np

import civa_env
from civa_env.policies.batch import Batch
from civa_env.policies.random import RandomPolicy
from civa_env.world.perception import Briefer


def measure(n_agents: int, obs_mode: str, seconds: float, seed: int = 0) -> dict[str, float]:
    """Play episodes for about ``seconds`` and return the figures of one row."""
    env = civa_env.parallel_env(n_agents=n_agents, obs_mode=obs_mode, seed=seed)
    policy = RandomPolicy(seed=seed)
    steps = resident_steps = 0
    step_time = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, infos = env.reset()
        while env.agents:
            actions = policy.act(Batch.from_observations({a: obs[a] for a in env.agents}, infos))
            t = time.perf_counter()
            obs, _, _, _, infos = env.step(actions)
            step_time += time.perf_counter() - t
            steps += 1
            resident_steps += len(actions)
    total = time.perf_counter() - start
    # Text cost per resident, on a fresh state of this size.
    env.reset(seed=seed)
    briefer = Briefer(env.world.state, env.world.view, env.cfg)
    living = np.flatnonzero(env.world.state.alive).tolist()
    t = time.perf_counter()
    reps = max(1, 2000 // len(living))
    for _ in range(reps):
        for i in living:
            briefer.brief(i)
    text_us = (time.perf_counter() - t) / (reps * len(living)) * 1e6
    # Memory allocated during one step, per resident in it.
    obs, infos = env.reset(seed=seed)
    actions = policy.act(Batch.from_observations({a: obs[a] for a in env.agents}, infos))
    tracemalloc.start()
    env.step(actions)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"residents": n_agents, "mode": obs_mode, "steps": steps,
            "mean_living": resident_steps / max(steps, 1),
            "env_rs_per_s": resident_steps / step_time, "loop_rs_per_s": resident_steps / total,
            "text_us_per_resident": text_us, "bytes_per_step_per_resident": peak / len(actions)}


def measure_vector(num_envs: int, n_agents: int, seconds: float, seed: int = 0,
                   min_steps: int = 1) -> dict[str, float]:
    """Resident-steps per CPU-second of ``vector_env.step``, and of the ParallelEnv's
    ``env.step`` (numeric, random valid flat ids) at the same community size."""
    from civa_env.world import factored

    venv = civa_env.vector_env(num_envs=num_envs, n_agents=n_agents)
    spec = venv.spec
    o = spec.offsets
    rng = np.random.default_rng(seed)
    obs, _ = venv.reset(seed=seed)
    steps = resident_steps = 0
    cpu = 0.0
    while cpu < seconds or steps < min_steps:
        mask = obs["action_mask"].astype(bool)
        acts = np.zeros((venv.num_slots, factored.N_COMPONENTS), np.int64)
        for c in range(4):  # primary, secondary, target, amount; no messages
            score = np.where(mask[:, o[c]:o[c + 1]], rng.random((venv.num_slots,
                                                                int(spec.nvec[c]))), -1.0)
            acts[:, c] = score.argmax(axis=1)
        resident_steps += int(obs["alive"].sum())
        t = time.process_time()
        obs, *_ = venv.step(acts)
        cpu += time.process_time() - t
        steps += 1
    return {"num_envs": num_envs, "residents": n_agents, "steps": steps,
            "mean_living": resident_steps / max(steps, 1),
            "vector_rs_per_cpu_s": resident_steps / cpu,
            "parallel_rs_per_cpu_s": parallel_rate(n_agents, seconds, seed)}


def parallel_rate(n_agents: int, seconds: float, seed: int = 0, episodes: int = 0) -> float:
    """Resident-steps per CPU-second of the ParallelEnv's ``env.step`` (numeric, random valid
    flat ids) of the ``civa_env`` that imports, over ``seconds`` of step time and at least
    ``episodes`` whole episodes. Self-contained: ``--baseline`` runs its source in a
    subprocess that imports another checkout's ``civa_env``."""
    import time

    import numpy as np

    import civa_env

    env = civa_env.parallel_env(n_agents=n_agents, obs_mode="numeric", seed=seed)
    rng = np.random.default_rng(seed)
    steps = played = 0
    cpu = 0.0
    while cpu < seconds or played < episodes:
        obs, infos = env.reset()
        played += 1
        while env.agents and (cpu < seconds or played <= episodes):
            mask = np.stack([obs[a]["action_mask"] for a in env.agents]).astype(bool)
            ids = np.where(mask, rng.random(mask.shape), -1.0).argmax(axis=1)
            t = time.process_time()
            obs, *_ = env.step(dict(zip(env.agents, ids.tolist(), strict=True)))
            cpu += time.process_time() - t
            steps += len(ids)
    return steps / cpu


PEER = """
import sys, time, numpy as np
from magent2.environments import battle_v4
seconds = float(sys.argv[1])
env = battle_v4.parallel_env(map_size=45, max_cycles=200)
rng = np.random.default_rng(0)
steps = agents = 0
cpu = 0.0
while cpu < seconds:
    obs, infos = env.reset(seed=int(rng.integers(1 << 30)))
    while env.agents and cpu < seconds:
        acts = {a: int(env.action_space(a).sample()) for a in env.agents}
        t = time.process_time()
        env.step(acts)
        cpu += time.process_time() - t
        steps += 1
        agents += len(acts)
print(agents / cpu, agents / max(steps, 1))
"""


BASELINE = """
import sys
import civa_env
print(civa_env.__file__)
parallel_rate(5, 0.0, episodes=3)  # (warm: compiled kernels compile or load here)
print(parallel_rate(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
"""


def checkout_root(root: str) -> str:
    """The absolute path of ``root``; ``SystemExit`` naming it when it holds no CIVA."""
    import os

    root = os.path.realpath(root)
    if not os.path.isfile(os.path.join(root, "civa_env", "__init__.py")):
        raise SystemExit(f"--baseline {root}: no civa_env package there (give the root of a "
                         "CIVA checkout, e.g. a git worktree)")
    return root


def measure_baseline(root: str, n_agents: int, seconds: float, seed: int = 0) -> float:
    """Resident-steps per CPU-second of the ParallelEnv (numeric, random valid flat ids) of
    the CIVA checkout at ``root``, in a subprocess that imports ``civa_env`` from there.

    Raises ``SystemExit`` naming the checkout when it does not import from ``root`` or the
    loop fails there."""
    import inspect
    import os
    import subprocess

    root = checkout_root(root)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [root, os.environ.get("PYTHONPATH", "")])))
    script = inspect.getsource(parallel_rate) + BASELINE
    out = subprocess.run([sys.executable, "-c", script, str(n_agents), str(seconds),
                          str(seed)], capture_output=True, text=True, env=env, cwd=root)
    if out.returncode != 0:
        raise SystemExit(f"--baseline {root}: its ParallelEnv loop failed:\n{out.stderr}")
    where, rate = out.stdout.split()
    if not os.path.realpath(where).startswith(root + os.sep):
        raise SystemExit(f"--baseline {root}: civa_env imported from {where}, not from there")
    return float(rate)


def measure_peer(python: str, seconds: float) -> tuple[float, float] | None:
    """magent2 battle: (agent-steps per CPU-second, mean agents a step), or None when it does
    not import with ``python``."""
    import subprocess

    out = subprocess.run([python, "-c", PEER, str(seconds)], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    rate, living = (float(x) for x in out.stdout.split())
    return rate, living


def warm_up() -> None:
    """Compile (or load from numba's cache) the world's kernels before anything is timed:
    a few days of a small batch and of a small ParallelEnv, random valid actions."""
    measure_vector(2, 5, 0.05, min_steps=5)
    env = civa_env.parallel_env(n_agents=5, obs_mode="numeric", seed=0)
    obs, infos = env.reset()
    policy = RandomPolicy(seed=0)
    for _ in range(5):
        if not env.agents:
            break
        obs, _, _, _, infos = env.step(policy.act(Batch.from_observations(
            {a: obs[a] for a in env.agents}, infos)))


def main() -> None:
    """Print the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25,100,1000")
    parser.add_argument("--modes", default="numeric,text")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--min-steps", type=int, default=3,
                        help="batch steps of the vector env at least (a step of a "
                             "1,000,000-resident batch takes longer than --seconds)")
    parser.add_argument("--vector", default="64x25,16x1000",
                        help="vector API batches ExN to measure ('' for none)")
    parser.add_argument("--peer-python", default=sys.executable,
                        help="interpreter that imports magent2, for the peer row")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with more than 1: then measure the first --vector batch, the "
                             "ParallelEnv and the peer this many times, interleaved, and "
                             "print each round and the medians")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="root of another CIVA checkout (e.g. a git worktree of an older "
                             "revision) whose ParallelEnv each round also measures")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.baseline is not None:
        if not args.vector:
            parser.error("--baseline compares with the first --vector batch; give --vector")
        checkout_root(args.baseline)  # before anything is measured
    warm_up()
    print("| residents | obs mode | steps | mean living | env.step resident-steps/s "
          "| loop resident-steps/s | text us/resident | step bytes/resident |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        for mode in args.modes.split(","):
            r = measure(n, mode, args.seconds)
            print(f"| {r['residents']} | {r['mode']} | {r['steps']} | {r['mean_living']:.0f} "
                  f"| {r['env_rs_per_s']:,.0f} "
                  f"| {r['loop_rs_per_s']:,.0f} | {r['text_us_per_resident']:.1f} "
                  f"| {r['bytes_per_step_per_resident']:,.0f} |", flush=True)
    if args.vector:
        print()
        print("| communities x residents | batch steps | mean living slots | vector_env.step "
              "resident-steps per CPU-s | ParallelEnv env.step (numeric) | vector / parallel |")
        print("|---|---:|---:|---:|---:|---:|")
    for spec in filter(None, args.vector.split(",")):
        e, n = (int(x) for x in spec.lower().split("x"))
        r = measure_vector(e, n, args.seconds, min_steps=args.min_steps)
        print(f"| {e} x {n} | {r['steps']} | {r['mean_living']:.0f} "
              f"| {r['vector_rs_per_cpu_s']:,.0f} | {r['parallel_rs_per_cpu_s']:,.0f} "
              f"| {r['vector_rs_per_cpu_s'] / r['parallel_rs_per_cpu_s']:.2f} |", flush=True)
    if args.vector:
        peer = measure_peer(args.peer_python, args.seconds)
        if peer is None:
            print("| magent2 battle_v4 (peer) | not installed | | | | |")
        else:
            print(f"| magent2 battle_v4 (peer, C++ core) | | {peer[1]:.0f} | | "
                  f"{peer[0]:,.0f} agent-steps per CPU-s (its env.step) | |", flush=True)
    if (args.rounds > 1 or args.baseline is not None) and args.vector:
        interleaved(args)


def interleaved(args: argparse.Namespace) -> None:
    """The first --vector batch, the ParallelEnv at its community size and the peer, one
    after the other, ``--rounds`` times; each round's figures, then the medians and the
    ratios of the medians."""
    e, n = (int(x) for x in args.vector.split(",")[0].lower().split("x"))
    base = args.baseline is not None
    print()
    print(f"| round | vector_env {e} x {n} | ParallelEnv {n} (numeric) "
          + ("| ParallelEnv of the baseline " if base else "")
          + "| magent2 battle_v4 (peer) | vector / parallel "
          + ("| vector / baseline " if base else "") + "| vector / peer |")
    print("|---:" * (8 if base else 6) + "|")
    rows = []

    def line(label: str, vec: float, par: float, old: float, other: float) -> str:
        cells = [label, f"{vec:,.0f}", f"{par:,.0f}"] + ([f"{old:,.0f}"] if base else [])
        cells += [f"{other:,.0f}", f"{vec / par:.2f}"] + ([f"{vec / old:.2f}"] if base else [])
        return "| " + " | ".join(cells + [f"{vec / other:.2f}"]) + " |"

    for k in range(args.rounds):
        r = measure_vector(e, n, args.seconds, seed=k, min_steps=args.min_steps)
        old = (measure_baseline(args.baseline, n, args.seconds, seed=k) if base
               else float("nan"))
        peer = measure_peer(args.peer_python, args.seconds)
        vec, par = r["vector_rs_per_cpu_s"], r["parallel_rs_per_cpu_s"]
        other = peer[0] if peer is not None else float("nan")
        rows.append((vec, par, old, other))
        print(line(str(k + 1), vec, par, old, other), flush=True)
    print(line("median", *(float(np.median(c)) for c in np.array(rows).T)), flush=True)


if __name__ == "__main__":
    main()
