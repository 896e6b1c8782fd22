"""RL, scripted and LLM residents in one community, with metrics broken down by policy.

    python examples/mixed_population.py --checkpoint runs/examples/ppo_small.zip \
        --model Qwen/Qwen2.5-0.5B-Instruct

Everything it writes goes under ``--out`` (default ``runs/examples/mixed``): the run folder
``OUT/run``, and, when it makes them, the PPO policy it trains (``OUT/ppo/.../model.zip``)
and the tiny LLM it builds (``OUT/tiny-llm``). Without ``--checkpoint`` a small PPO policy
is trained first (about a minute); without ``--model`` a tiny random-weight Llama is built
locally (no download: its answers are noise, but constrained decoding still turns them into
valid actions). The same run from the shell:

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
from civa_env.experiments.breakdown import group_table
from civa_env.experiments.runner import run_community

TRAIN_NAME = "mixed"  # the training's --exp-name; its folder is OUT/ppo/<name>__baseline__...


def output_paths(out: Path) -> dict[str, Path]:
    """Where the example writes, all under ``out``: the run folder, the PPO training folder
    and its checkpoint, and the tiny LLM."""
    out = Path(out)
    return {"run": out / "run", "ppo": out / "ppo",
            "checkpoint": out / "ppo" / f"{TRAIN_NAME}__baseline__survival__0" / "model.zip",
            "tiny_llm": out / "tiny-llm"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="PPO checkpoint (zip) for this world's shape")
    parser.add_argument("--model", help="LLM hub id or folder (default: a tiny local model)")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--out", default="runs/examples/mixed",
                        help="folder for everything the example writes (default "
                             "runs/examples/mixed)")
    args = parser.parse_args(argv)

    paths = output_paths(Path(args.out))
    cfg = Config(n_agents=10, n_factories=3, view_size=4, max_days=args.days)
    checkpoint = args.checkpoint
    if checkpoint is None:  # train a small policy for this world's shape, under --out
        root = Path(__file__).resolve().parents[1]
        subprocess.run([sys.executable, str(root / "baselines" / "train_ppo.py"),
                        "--n-agents", "10", "--n-factories", "3", "--view-size", "4",
                        "--total-timesteps", "30000", "--eval-episodes", "0",
                        "--out-dir", str(paths["ppo"]), "--exp-name", TRAIN_NAME], check=True)
        checkpoint = str(paths["checkpoint"])
    model = args.model
    llm_options: dict = {}
    if model is None:
        from civa_env.policies.llm.models.tiny import build_tiny_model

        model = str(build_tiny_model(paths["tiny_llm"]))
        llm_options = {"max_new_tokens_cap": 200}  # random weights ramble until the cap

    mix = {f"ppo:{checkpoint}": 0.4, "scripted": 0.3, "llm": 0.3}
    result = run_community(cfg, mix, seed=0, run_dir=paths["run"], overwrite=True,
                           policy_kwargs={"llm": {"model": model, **llm_options}})
    s = result.summary
    print(f"nAUP {s['nAUP']:.2f}  SC {s['SC']:.2f}  ED {s['ED']:.2f}  IC {s['IC']:.2f}  "
          f"CC {s['CC']:.2f}")
    print("\n".join(group_table(s["by_policy"], heading="policy", indent="")))
    print(f"run folder: {paths['run']} (view it with: civa view {paths['run']})")


if __name__ == "__main__":
    main()
