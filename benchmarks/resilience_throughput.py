"""Resilience throughput: finished runs per minute of ``civa resilience`` with 1 and 2 workers.

Each measurement runs a fresh resilience test of the same design (default: baseline and
with:power at prevalence 1, 4 seeds, 25 scripted residents, 10 unstressed days then 20 under
stress, coarse levels 1,2,3, one refinement round, fold diagnostics on) into a temporary
folder, and prints a table. Everything a user waits for is included: pool start-up, the run
folders, runs.csv, the bootstrap (``--bootstrap``), the plot and resilience.md. CPU seconds
are this process's and its workers' (``resource.getrusage``), so CPU / wall says how busy
the workers kept the machine.

    python benchmarks/resilience_throughput.py
    python benchmarks/resilience_throughput.py --workers 1,2,4 --seeds 8 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from civa_env.experiments.resilience import Resilience
from civa_env.world.config import Config


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--conditions", default="baseline,with:power")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per cell")
    parser.add_argument("--agents", type=int, default=25)
    parser.add_argument("--stress-day", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--levels", default="1,2,3")
    parser.add_argument("--refine", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--no-diagnostics", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="measurements per worker count")
    parser.add_argument("--backend", default="local", choices=("local", "ray"))
    args = parser.parse_args()
    base = Config(n_agents=args.agents)
    levels = [float(x) for x in args.levels.split(",")]
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                test = Resilience(Path(tmp) / "res", args.conditions.split(","), [1.0],
                                  args.seeds, base, stressor="upkeep", levels=levels,
                                  stress_day=args.stress_day, horizon=args.horizon,
                                  refine=args.refine, diagnostics=not args.no_diagnostics,
                                  n_boot=args.bootstrap)
                cpu, start = cpu_seconds(), time.perf_counter()
                report = test.run(workers=workers, backend=args.backend, progress=False,
                                  log=lambda line: None)
                seconds = time.perf_counter() - start
                cpu = cpu_seconds() - cpu
            rows.append((workers, report.ran, seconds, cpu, 60.0 * report.ran / seconds))
    print(f"| workers | runs | wall s | CPU s | CPU/wall | runs/minute |  ({args.backend}, "
          f"{args.agents} residents, {args.stress_day}+{args.horizon} days, "
          f"{os.cpu_count()} CPUs)")
    print("|---|---|---|---|---|---|")
    for workers, runs, seconds, cpu, rate in rows:
        print(f"| {workers} | {runs} | {seconds:.1f} | {cpu:.1f} | {cpu / seconds:.2f} | "
              f"{rate:.0f} |")
    best: dict[int, float] = {}
    for workers, _, _, _, rate in rows:
        best[workers] = max(best.get(workers, 0.0), rate)
    if len(best) > 1:
        lo, hi = min(best), max(best)
        print(f"speed-up {hi} vs {lo} workers (best of each): {best[hi] / best[lo]:.2f}x")


if __name__ == "__main__":
    main()
