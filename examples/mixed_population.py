"""RL, scripted and LLM residents in one community, with metrics broken down by policy.

    python examples/mixed_population.py --checkpoint runs/examples/ppo_small.zip \
        --model Qwen/Qwen2.5-0.5B-Instruct

Without ``--checkpoint`` a small PPO policy is trained first (about a minute); without
``--model`` a tiny random-weight Llama is built locally (no download: its answers are noise,
but constrained decoding still turns them into valid actions). The same run from the shell:

    civa run --policy ppo:runs/examples/ppo_small.zip=0.4,scripted=0.3,llm=0.3 \
        --model Qwen/Qwen2.5-0.5B-Instruct --agents 10 --set n_factories=3 --set view_size=4

Each policy is called once a day for all its residents: the RL residents in one forward pass,
the LLM residents in one batched generation.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from civa_env import Config
from civa_env.experiments.runner import run_community


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="PPO checkpoint (zip) for this world's shape")
    parser.add_argument("--model", help="LLM hub id or folder (default: a tiny local model)")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--out", default="runs/examples/mixed")
    args = parser.parse_args()

    cfg = Config(n_agents=10, n_factories=3, view_size=4, max_days=args.days)
    checkpoint = args.checkpoint
    if checkpoint is None:  # train a small policy for this world's shape
        root = Path(__file__).resolve().parents[1]
        subprocess.run([sys.executable, str(root / "baselines" / "train_ppo.py"),
                        "--n-agents", "10", "--n-factories", "3", "--view-size", "4",
                        "--total-timesteps", "30000", "--eval-episodes", "0",
                        "--out-dir", "runs/examples", "--exp-name", "mixed"], check=True)
        checkpoint = "runs/examples/mixed__baseline__survival__0/model.zip"
    model = args.model
    llm_options: dict = {}
    if model is None:
        from civa_env.policies.llm.models.tiny import build_tiny_model

        model = str(build_tiny_model(Path("runs/examples/tiny-llm")))
        llm_options = {"max_new_tokens_cap": 200}  # random weights ramble until the cap

    mix = {f"ppo:{checkpoint}": 0.4, "scripted": 0.3, "llm": 0.3}
    result = run_community(cfg, mix, seed=0, run_dir=Path(args.out), overwrite=True,
                           policy_kwargs={"llm": {"model": model, **llm_options}})
    s = result.summary
    print(f"nAUP {s['nAUP']:.2f}  SC {s['SC']:.2f}  ED {s['ED']:.2f}  IC {s['IC']:.2f}  "
          f"CC {s['CC']:.2f}")
    for policy, group in s["by_policy"].items():
        print(f"{policy:>40}: {group['founders']} founders, {group['born']} born, "
              f"survival {group['survival']:.2f}, mean wealth {group['mean_wealth_end']:.1f}")
    print(f"run folder: {args.out} (view it with: civa view {args.out})")


if __name__ == "__main__":
    main()
