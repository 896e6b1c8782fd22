"""Worlds that scale: do large communities stay large? (README "Worlds that scale").

Runs communities of scripted residents (the default policy of ``civa run``) for 30 days at
several founder counts, with the factories derived from the founders (the default: 5 up to
27 founders, then one per 5 founders, seen through 8 factory slots) and with the old fixed 5
factories, and prints the living population on days 10, 20 and 30, nAUP (mean and range
over seeds) and CPU seconds per run. Nothing here tunes the rules: the outcome follows from
the factories a world has.

Usage::

    python benchmarks/scale.py                       # 25, 1,000 and 10,000 founders
    python benchmarks/scale.py --agents 25 1000 --seeds 3 --plot scale.png
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from civa_env import world
from civa_env.policies.base import make_policy
from civa_env.policies.batch import Batch
from civa_env.world.config import Config


def run(cfg: Config, seed: int) -> tuple[list[int], float]:
    """Living count at the end of each day, and the CPU seconds the run took."""
    t0 = time.process_time()
    policy = make_policy("scripted", seed=seed)
    policy.reset(cfg, seed)
    w = world.reset(cfg, seed)
    population = []
    while not w.done:
        rows = w.living
        seen = w.observe(rows)
        acts = policy.act(Batch.from_seen(seen, [f"resident_{i}" for i in rows.tolist()]))
        w, day = world.step(w, acts)
        population.append(int(day.census["population"]))
    population += [0] * (cfg.max_days - len(population))  # extinct: 0 for the days left
    return population, time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[25, 1000, 10_000])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per row (10,000: at most 2)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--plot", help="write the population curves to this image")
    ap.add_argument("--out", help="also write the table (markdown) to this file")
    args = ap.parse_args(argv)
    rows, curves = [], {}
    for n in args.agents:
        for label, extra in (("grows", {}), ("fixed 5", {"n_factories": 5})):
            cfg = Config(n_agents=n, max_days=args.days, obs_mode="numeric", **extra)
            if label == "fixed 5" and cfg.n_factories == Config(n_agents=n).n_factories:
                continue  # the same world
            seeds = range(min(args.seeds, 2) if n >= 10_000 else args.seeds)
            pops, cpu = [], []
            for s in seeds:
                p, c = run(cfg, s)
                pops.append(p)
                cpu.append(c)
                print(f"  {n} founders, {cfg.n_factories} factories, seed {s}: "
                      f"{p[-1]} alive on day {args.days} ({c:.1f} CPU s)", flush=True)
            pop = np.array(pops)
            naup = pop.sum(1) / (args.days * n)
            day = {d: pop[:, min(d, args.days) - 1].mean() for d in (10, 20, 30)}
            rows.append((n, cfg.n_factories, cfg.factory_slot_count, len(pops), day[10] / n,
                         day[20] / n, day[30] / n, naup.mean(), naup.min(), naup.max(),
                         np.mean(cpu)))
            curves[(n, cfg.n_factories)] = pop.mean(0) / n
    head = ("| founders | factories | slots | seeds | alive day 10 | day 20 | day 30 "
            "| nAUP mean [min, max] | CPU s / run |")
    lines = [head, "|" + "---|" * 9]
    for n, m, s, k, d10, d20, d30, mean, lo, hi, cpu in rows:
        lines.append(f"| {n:,} | {m:,} | {s} | {k} | {d10:.2f} | {d20:.2f} | {d30:.2f} "
                     f"| {mean:.3f} [{lo:.3f}, {hi:.3f}] | {cpu:.1f} |")
    table = "\n".join(lines)
    print("\nLiving residents as a share of the founders (mean over seeds):\n")
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(f"`python benchmarks/{' '.join(['scale.py'] + sys.argv[1:])}`\n\n"
                    "Living residents as a share of the founders (mean over seeds); scripted "
                    "residents, baseline condition, 30 days.\n\n" + table + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for (n, m), curve in curves.items():
            ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{n:,} founders, {m:,} factories",
                    linestyle="-" if m > 5 or n <= 27 else "--")
        ax.set_xlabel("day")
        ax.set_ylabel("living / founders")
        ax.set_title("Scripted communities: factories growing with the founders vs fixed at 5")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
