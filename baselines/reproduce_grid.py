"""Reproduce the study's value grid with scripted residents (CleanRL-style single file).

Ten values x two directions x five prevalences (0, 0.25, 0.5, 0.75, 1) x seeds, plus the
baseline, 25 residents for 30 days each, then the report (tables and plots) into
``baselines/results/grid/``. Resumable: rerun the same command after an interruption.

    python baselines/reproduce_grid.py                 # 8 seeds, 2 workers (~5 min on 2 cores)
    python baselines/reproduce_grid.py --seeds 3 --out runs/grid3 --report /tmp/grid3
    python baselines/reproduce_grid.py --policy scripted:v2 --workers 1 \
        --out runs/grid_v2 --report baselines/results/grid_v2   # the second arm (memory)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from civa_env.experiments.report import build_report
from civa_env.experiments.sweep import Sweep
from civa_env.world.config import Config
from civa_env.world.values import all_conditions


@dataclass
class Args:
    seeds: int = 8
    """seeds per (condition, prevalence) cell"""
    workers: int = 2
    """parallel worker processes"""
    backend: str = "local"
    """local (process pool) or ray"""
    agents: int = 25
    """residents at the start"""
    days: int = 30
    """days per episode"""
    prevalences: str = "0,0.25,0.5,0.75,1"
    """comma-separated prevalence levels"""
    out: str = "runs/grid"
    """sweep folder (run folders and results.csv; not committed)"""
    report: str = "baselines/results/grid"
    """report folder (committed: tables and plots)"""
    policy: str = "scripted"
    """residents' policy: scripted (table scripted-v1) or scripted:v2 (social memory)"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default),
                            default=f.default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    args = parse_args()
    # TRY NOT TO MODIFY: the grid of the study (all conditions x prevalences x seeds)
    base = Config(n_agents=args.agents, max_days=args.days)
    prevalences = [float(p) for p in args.prevalences.split(",")]
    sweep = Sweep(Path(args.out), all_conditions(), prevalences, args.seeds, base, args.policy)
    start = time.perf_counter()
    done = sweep.run(workers=args.workers, backend=args.backend)
    print(f"{done.total} runs ({done.ran} run now, {done.already + done.recovered} reused) "
          f"in {time.perf_counter() - start:.0f} s")
    # Report: tables and plots only (no run pages: the run folders are not committed)
    arm = "" if args.policy == "scripted" else f" ({args.policy})"
    report = build_report(Path(args.out), Path(args.report), pages=False,
                          title=f"Scripted residents{arm}, full value grid ({args.seeds} seeds)")
    print(f"Report: {report}")
