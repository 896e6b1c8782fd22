"""Sweep throughput: finished runs per minute with 1 and 2 workers (local process pool).

Each measurement runs a fresh sweep of the same grid (default 24 runs of 25 scripted
residents for 30 days, run folders and events written, no per-run plots) into a temporary
folder, and prints a table. Pool start-up is included, as a user would see it.

    python benchmarks/sweep_throughput.py
    python benchmarks/sweep_throughput.py --workers 1,2,4 --seeds 4 --backend ray
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from civa_env.experiments.sweep import Sweep
from civa_env.world.config import Config

CONDITIONS = ["baseline", "with:power", "without:benevolence", "with:benevolence"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per cell")
    parser.add_argument("--prevalence", default="0.5,1", help="prevalences")
    parser.add_argument("--agents", type=int, default=25)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--backend", default="local", choices=("local", "ray"))
    args = parser.parse_args()
    prevalences = [float(p) for p in args.prevalence.split(",")]
    base = Config(n_agents=args.agents, max_days=args.days)
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            sweep = Sweep(Path(tmp) / "sweep", CONDITIONS, prevalences, args.seeds, base)
            start = time.perf_counter()
            report = sweep.run(workers=workers, backend=args.backend, progress=False)
            seconds = time.perf_counter() - start
        rows.append((workers, report.ran, seconds, 60.0 * report.ran / seconds))
    print(f"| workers | runs | seconds | runs/minute |  ({args.backend}, {args.agents} "
          f"residents, {args.days} days)")
    print("|---|---|---|---|")
    for workers, runs, seconds, rate in rows:
        print(f"| {workers} | {runs} | {seconds:.1f} | {rate:.0f} |")
    best: dict[int, float] = {}
    for workers, _, _, rate in rows:
        best[workers] = max(best.get(workers, 0.0), rate)
    if len(best) > 1:
        lo, hi = min(best), max(best)
        print(f"speed-up {hi} vs {lo} workers (best of each): {best[hi] / best[lo]:.2f}x")


if __name__ == "__main__":
    main()
