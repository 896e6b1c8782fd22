"""LLM residents' throughput: decisions/s and tokens/s by batch size, batched vs one at a time.

For each batch size B, B residents of a fresh community (real briefings, value prompts,
per-resident JSON schemas, constrained decoding, parsing) decide one day through
``LLMPolicy.act``: once as one batched call, and once one resident at a time (on a sample
of ``--sequential`` residents, extrapolated per decision). Prints a table and writes
``benchmarks/results/llm_throughput_<label>.json`` and ``.md``.

    # a real model (GPU)
    python benchmarks/llm_throughput.py --model Qwen/Qwen2.5-1.5B-Instruct
    # a random-weight model with a real model's layer shapes (no download; speed only)
    python benchmarks/llm_throughput.py --random-shape qwen2.5-1.5b --batch-sizes 8,16,32,64,128,256
    # the tiny test model on the CPU
    python benchmarks/llm_throughput.py --tiny --batch-sizes 8,16,32 --sequential 8 --label cpu-tiny
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import civa_env
from civa_env.policies import Batch
from civa_env.policies.llm.models.tiny import SHAPES, build_random_shape, build_tiny_model
from civa_env.policies.llm.policy import LLMPolicy

RESULTS = Path(__file__).parent / "results"


def one_day(policy: LLMPolicy, obs: dict, infos: dict, keys: list[str]) -> dict[str, float]:
    """Time one ``act`` over ``keys``; returns seconds and token counts."""
    policy.reset(None, seed=0)  # type: ignore[arg-type]
    batch = Batch.from_observations({k: obs[k] for k in keys}, {k: infos[k] for k in keys},
                                    day=1)
    start = time.perf_counter()
    policy.act(batch)
    seconds = time.perf_counter() - start
    s = policy.stats
    return {"seconds": seconds, "decisions": s["decisions"], "valid": s["valid"],
            "prompt_tokens": s["prompt_tokens"], "completion_tokens": s["completion_tokens"]}


def measure(policy: LLMPolicy, batch: int, sequential: int, seed: int) -> dict[str, Any]:
    """Batched and one-at-a-time figures for ``batch`` residents."""
    env = civa_env.parallel_env(n_agents=batch, seed=seed)
    obs, infos = env.reset(seed=seed)
    keys = env.agents[:batch]
    batched = one_day(policy, obs, infos, keys)
    alone = {"seconds": 0.0, "decisions": 0, "valid": 0, "prompt_tokens": 0,
             "completion_tokens": 0}
    for key in keys[:sequential]:
        day = one_day(policy, obs, infos, [key])
        for name in alone:
            alone[name] += day[name]
    row: dict[str, Any] = {"batch": batch}
    for label, d in (("batched", batched), ("sequential", alone)):
        secs = max(d["seconds"], 1e-9)
        row[label] = {**d, "decisions_per_s": d["decisions"] / secs,
                      "prompt_tokens_per_s": d["prompt_tokens"] / secs,
                      "generated_tokens_per_s": d["completion_tokens"] / secs}
    row["speedup"] = row["batched"]["decisions_per_s"] / max(
        row["sequential"]["decisions_per_s"], 1e-9)
    return row


def markdown(result: dict[str, Any]) -> str:
    """The results table."""
    lines = [f"# LLM throughput: {result['label']}", "",
             f"Model: `{result['model']}`; device: {result['device']}; mode: "
             f"{result['mode']}; constrained: {result['constrained']}; text chars: "
             f"{result['text_chars'] or 'policy defaults'}; "
             f"max_new_tokens: {result['max_new_tokens'] or 'schema bound'}; "
             f"sequential sample: {result['sequential']} residents.", "",
             "| batch | decisions/s batched | decisions/s one at a time | speedup | "
             "prompt tok/s | generated tok/s | s/day batched | valid |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        b, s = r["batched"], r["sequential"]
        lines.append(f"| {r['batch']} | {b['decisions_per_s']:.2f} | {s['decisions_per_s']:.2f} "
                     f"| {r['speedup']:.1f}x | {b['prompt_tokens_per_s']:.0f} | "
                     f"{b['generated_tokens_per_s']:.0f} | {b['seconds']:.2f} | "
                     f"{b['valid']}/{b['decisions']} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="hub id or folder of a causal LM")
    source.add_argument("--random-shape", choices=sorted(SHAPES),
                        help="random weights with a real model's layer shapes (no download)")
    source.add_argument("--tiny", action="store_true", help="the tiny 2-layer test model")
    parser.add_argument("--batch-sizes", default="8,16,32,64,128,256")
    parser.add_argument("--sequential", type=int, default=8,
                        help="residents timed one at a time per batch size (extrapolated)")
    parser.add_argument("--mode", default="combined", choices=("combined", "full"))
    parser.add_argument("--unconstrained", action="store_true")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-batch-size", type=int, default=None)
    parser.add_argument("--text-chars", type=int, default=None,
                        help="cap reflection, memory and message lengths (default: the "
                             "policy's; 16 with --tiny)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default=None, help="results file label")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    if args.model:
        model, label = args.model, Path(args.model).name.lower()
    elif args.random_shape:
        model = str(build_random_shape(Path(tmp.name) / args.random_shape, args.random_shape))
        label = f"random-{args.random_shape}"
    else:
        model, label = str(build_tiny_model(Path(tmp.name) / "tiny")), "tiny"
    options: dict[str, Any] = {"device": args.device, "dtype": args.dtype,
                               "max_batch_size": args.max_batch_size}
    chars = args.text_chars or (16 if args.tiny else None)
    limits = ({"reflection_chars": chars, "memory_chars": chars, "message_chars": chars}
              if chars else {})
    policy = LLMPolicy(model, mode=args.mode, cache="off", constrained=not args.unconstrained,
                       max_new_tokens=args.max_new_tokens, **limits, **options)
    device = str(policy.backend.device)
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name(0)})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        device += "threads)"
    sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    measure(policy, 2, 1, args.seed)  # warm-up: grammar tokenizer, kernels
    rows = []
    print(f"{'batch':>6} {'dec/s batched':>14} {'dec/s alone':>12} {'speedup':>8} "
          f"{'prompt tok/s':>13} {'gen tok/s':>10} {'valid':>9}")
    for batch in sizes:
        row = measure(policy, batch, min(args.sequential, batch), args.seed)
        rows.append(row)
        b, s = row["batched"], row["sequential"]
        print(f"{batch:>6} {b['decisions_per_s']:>14.2f} {s['decisions_per_s']:>12.2f} "
              f"{row['speedup']:>7.1f}x {b['prompt_tokens_per_s']:>13.0f} "
              f"{b['generated_tokens_per_s']:>10.0f} {b['valid']:>4}/{b['decisions']:<4}",
              flush=True)
    label = args.label or label
    result = {"label": label, "model": args.model or args.random_shape or "tiny (2 layers, 64 "
              "wide, random)", "device": device, "mode": args.mode,
              "constrained": not args.unconstrained, "max_new_tokens": args.max_new_tokens,
              "text_chars": chars,
              "sequential": args.sequential, "torch": torch.__version__,
              "command": "python benchmarks/llm_throughput.py " + " ".join(
                  argv if argv is not None else __import__("sys").argv[1:]),
              "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"llm_throughput_{label}.json").write_text(json.dumps(result, indent=1))
    (out / f"llm_throughput_{label}.md").write_text(markdown(result))
    print(f"written: {out / f'llm_throughput_{label}.md'}")
    policy.close()
    tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
