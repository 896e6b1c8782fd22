"""Environment throughput: resident-steps per second with random valid actions.

    python benchmarks/env_throughput.py            # 25, 100 and 1000 residents, text on/off
    python benchmarks/env_throughput.py --sizes 100 --seconds 5

For each size and observation mode it plays whole episodes with uniformly random valid flat
actions (vectorised over the action masks) and reports resident-steps per second of
``env.step`` alone and of the whole loop, the share of step time spent building text
(measured per resident in a separate pass over the same states), and the bytes allocated per
step per resident (tracemalloc peak during one step, divided by the residents in it).
Figures are comparable only within one run: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    """Print the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25,100,1000")
    parser.add_argument("--modes", default="numeric,text")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
