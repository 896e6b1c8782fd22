"""Instructions per resident-step of two checkouts, counted by valgrind (exact, repeatable).

    python benchmarks/instruction_counts.py --old /tmp/civa_old --new .
    python benchmarks/instruction_counts.py --old /tmp/civa_old --new . --configs 25:numeric:4

Wall-clock and CPU-time rates on a shared machine move by 15-25% between repetitions;
callgrind's instruction count (``Ir``) does not. Each figure is a run of K episodes minus a
run of 0 episodes (imports and set-up cancel), over the resident-steps played, and over the
days played. The two checkouts play different worlds (0.2 changed the random streams), so
their trajectories differ: at small sizes a day's fixed cost dominates, and a world with
fewer living residents per day costs more per resident-step though nothing is slower. The
per-day figures and the living residents per day show this; a few episodes move the ratio
by 10-15%, more episodes (the defaults) settle it. Obs mode ``text-v1`` renders briefing v1
(0.1's text) where the checkout has ``Config.briefing``. The PettingZoo
loop plays random valid flat actions; the step loop runs scripted communities through
``run_community`` (the path of ``civa run`` and sweeps). Both checkouts must expose
``civa_env.parallel_env`` and ``run_community`` (in ``civa_env.runner`` for 0.1, in
``civa_env.experiments.runner`` since 0.2). Needs ``valgrind``; takes minutes per row.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_LOOP = """
import sys, numpy as np, civa_env
n, mode, eps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
# "text-v1": text observations with briefing v1 where the checkout has briefings (0.1's text)
extra = {}
if mode == "text-v1":
    mode = "text"
    from civa_env import Config
    if "briefing" in Config.__dataclass_fields__:
        extra["briefing"] = "v1"
env = civa_env.parallel_env(n_agents=n, obs_mode=mode, seed=0, **extra)
rng = np.random.default_rng(0)
env.reset(seed=0)
steps = days = 0
for ep in range(eps):
    obs, infos = env.reset(seed=ep)
    while env.agents:
        masks = np.stack([obs[a]["action_mask"] for a in env.agents]).astype(bool)
        s = rng.random(masks.shape); s[~masks] = -1
        steps += len(env.agents)
        days += 1
        obs, *_ = env.step(dict(zip(env.agents, s.argmax(1).tolist())))
print("resident_steps", steps)
print("days", days)
"""

RUNNER_LOOP = """
import sys
try:
    from civa_env.experiments.runner import run_community
except ImportError:
    from civa_env.runner import run_community
from civa_env import Config
n, mode, runs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
steps = days = 0
for s in range(runs):
    r = run_community(Config(n_agents=n, seed=s, obs_mode=mode), "scripted", seed=s,
                      progress=False, plots=False)
    steps += int(sum(r.summary["population"]))
    days += len(r.summary["population"])
print("resident_steps", steps)
print("days", days)
"""


def count(checkout: Path, script: Path, n: int, mode: str, k: int) -> tuple[int, int, int]:
    """(instructions, resident-steps, days) of one run under callgrind."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, str(script), str(n), mode, str(k)],
                         capture_output=True, text=True, cwd=checkout, env=env, check=True)
    text = out.stdout + out.stderr
    ir = int(re.search(r"Collected : (\d+)", text).group(1))
    steps = int(re.search(r"resident_steps (\d+)", text).group(1))
    days = int(re.search(r"days (\d+)", text).group(1))
    return ir, steps, days


def per_step(checkout: Path, script: Path, n: int, mode: str,
             k: int) -> tuple[float, float, float]:
    """Instructions per resident-step, per day, and the mean living residents per day."""
    base, _, _ = count(checkout, script, n, mode, 0)
    full, steps, days = count(checkout, script, n, mode, k)
    return (full - base) / steps, (full - base) / days, steps / days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout to compare against")
    parser.add_argument("--new", type=Path, default=Path("."), help="checkout to measure")
    parser.add_argument("--configs", default="env:25:numeric:16,env:25:text:10,"
                        "env:100:numeric:6,env:100:text:3,env:1000:numeric:1,loop:25:text:3",
                        help="comma-separated path:residents:obs_mode:episodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {"env": Path(tmp) / "env_loop.py", "loop": Path(tmp) / "runner_loop.py"}
        scripts["env"].write_text(ENV_LOOP)
        scripts["loop"].write_text(RUNNER_LOOP)
        print("| path | residents | obs mode | episodes | old instructions / resident-step "
              "| new | new / old | old / day | new / day | new / old | living per day, old "
              "| new |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for item in args.configs.split(","):
            path, n, mode, k = item.split(":")
            old, old_day, old_live = per_step(args.old.resolve(), scripts[path], int(n), mode,
                                              int(k))
            new, new_day, new_live = per_step(args.new.resolve(), scripts[path], int(n), mode,
                                              int(k))
            label = "env.step (PettingZoo)" if path == "env" else "step loop (scripted)"
            print(f"| {label} | {n} | {mode} | {k} | {old / 1e3:,.0f}k | {new / 1e3:,.0f}k | "
                  f"{new / old:.2f} | {old_day / 1e6:,.2f}M | {new_day / 1e6:,.2f}M | "
                  f"{new_day / old_day:.2f} | {old_live:.1f} | {new_live:.1f} |", flush=True)


if __name__ == "__main__":
    main()
