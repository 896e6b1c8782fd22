"""Memory per resident of the vector API, by community size and batch size.

    python benchmarks/memory_per_resident.py                       # 1k, 10k and 100k residents
    python benchmarks/memory_per_resident.py --batches 1000x1000   # a batch of a million

For each batch E x N (E communities of N founders) it builds ``vector_env``, resets it and
plays a few days with random valid factored actions, and reports the peak of Python-tracked
memory (``tracemalloc``: numpy arrays included) during reset and during a step, per founding
resident. Each row runs in a fresh process, so one row's arrays do not count in the next.
The vector env holds every slot of each community's name pool (``max_agents``, 4 x N by
default) in its observation arrays, unborn names included, so the figure per founder
includes three unborn slots each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ROW = """
import json, sys, tracemalloc, numpy as np
import civa_env
from civa_env.world import factored
e, n, days = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# numba and the compiled attack kernel load once per process (tens of MB of Python objects):
# loaded before tracing, as the interpreter itself is not counted either.
from civa_env.world.kernels import ally_csr, resolve_attacks
ptr, idx = ally_csr(np.zeros((0, 2), np.int32), 2)
resolve_attacks(np.array([0]), np.array([1]), np.array([0.5]), np.ones(2), np.ones(2),
                np.ones(2, bool), ptr, idx, 0.05, 40.0, 0.5, 0.2, 0.5, 0.5, np.zeros(2),
                np.zeros(2), np.zeros(2, np.int64))
tracemalloc.start()
venv = civa_env.vector_env(num_envs=e, n_agents=n)
obs, _ = venv.reset(seed=0)
reset_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
rng = np.random.default_rng(0)
o = venv.spec.offsets
CHUNK = 65536  # slots whose actions are drawn at once (the draws' own arrays stay small)
for _ in range(days):
    acts = np.zeros((venv.num_slots, factored.N_COMPONENTS), np.int64)
    for lo in range(0, venv.num_slots, CHUNK):
        m = obs["action_mask"][lo:lo + CHUNK].astype(bool)
        for c in range(4):
            u = rng.random((len(m), int(venv.spec.nvec[c])))
            acts[lo:lo + CHUNK, c] = np.where(m[:, o[c]:o[c + 1]], u, -1).argmax(axis=1)
    obs, *_ = venv.step(acts)
step_peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"reset": reset_peak, "step": step_peak, "slots": venv.num_slots}))
"""


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1x1000,10x1000,100x1000,1x10000",
                        help="comma-separated E x N batches")
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    print("| batch (E x N) | founders | slots | peak at reset, bytes per founder "
          "| peak during steps, bytes per founder |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.batches.split(","):
        e, n = (int(x) for x in spec.lower().split("x"))
        out = subprocess.run([sys.executable, "-c", ROW, str(e), str(n), str(args.days)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {e} x {n} | {e * n:,} | | failed: {out.stderr.strip().splitlines()[-1]} | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {e} x {n} | {e * n:,} | {r['slots']:,} | {r['reset'] / (e * n):,.0f} "
              f"| {r['step'] / (e * n):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
