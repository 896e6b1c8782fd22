"""Prompt tokens per LLM resident-day: briefing v1 against v2, combined against full mode.

    python benchmarks/llm_prompt_tokens.py                      # the test tokenizer
    python benchmarks/llm_prompt_tokens.py --tokenizer PATH     # any local HF tokenizer
    python benchmarks/llm_prompt_tokens.py --tokenizer model.gguf   # a GGUF file's tokenizer
    python benchmarks/llm_prompt_tokens.py --agents 25 --days 10 --seed 0

Each row runs one community of LLM residents for ``--days`` days. The residents are a
stand-in model that gives seeded random valid answers (``models.fake.schema_model``), so the
community does things (gifts, attacks, alliances, messages) and the briefings have content;
the prompts are the policy's real prompts, tokenized with the model's chat template. Columns:

* prompt tokens per resident-day: every call's prompt, summed, over resident-days;
* calls per resident-day;
* briefing tokens: the briefing text alone, mean per resident-day;
* shared prefix: the share of prompt tokens that begin like an earlier prompt of the same
  day, in an earlier call or earlier in the same batch (the longest common token prefix
  with any of them): what prefix caching (vLLM's ``enable_prefix_caching``) can skip. The
  system prompt and the rules card are shared by residents with the same persona; in full
  mode each call extends the resident's conversation.

The test tokenizer is the tiny model's byte-level BPE (trained on CIVA's own words, so it
needs fewer tokens than a real model's would); a real tokenizer is read with ``--tokenizer``
(a folder or a hub id already in the local cache: nothing is downloaded; or a ``.gguf`` file,
whose tokenizer and chat template transformers reads from its metadata, or a folder or hub
id with ``--gguf-file NAME``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from civa_env import Config
from civa_env.experiments.runner import run_community
from civa_env.policies.llm.models.base import (
    Generation,
    Grammar,
    LanguageModel,
    Prompt,
    as_messages,
)
from civa_env.policies.llm.models.fake import schema_model
from civa_env.policies.llm.policy import LLMPolicy


class TokenMeter(LanguageModel):
    """Answers like ``schema_model`` and measures every prompt with a real tokenizer."""

    def __init__(self, tokenizer: Any, seed: int) -> None:
        self.tokenizer, self.inner = tokenizer, schema_model(seed)
        self.day_pool: list[np.ndarray] = []
        self.tokens = self.shared = self.calls = 0

    @property
    def identity(self) -> str:
        return "token-meter"

    def new_day(self) -> None:
        self.day_pool = []

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        self.calls += 1
        batch = []
        for prompt in prompts:
            ids = np.asarray(self.tokenizer.apply_chat_template(
                as_messages(prompt), add_generation_prompt=True, tokenize=True,
                return_dict=False), np.int64)
            self.tokens += len(ids)
            # Earlier prompts of the day, this batch's included (a prefix cache shares
            # blocks between the requests of one batch too).
            self.shared += max((_common_prefix(ids, other) for other in self.day_pool),
                               default=0)
            self.day_pool.append(ids)
            batch.append(ids)
        gens = self.inner.generate(prompts, max_new_tokens=max_new_tokens, grammars=grammars)
        for g, ids in zip(gens, batch, strict=True):
            g.prompt_tokens = len(ids)
        return gens


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if len(diff) else n


def measure(tokenizer: Any, briefing: str, mode: str, agents: int, days: int,
            seed: int) -> dict[str, Any]:
    """One community's figures (see the module docstring)."""
    meter = TokenMeter(tokenizer, seed)
    values = "v1" if briefing == "v1" else "v2"
    policy = LLMPolicy(meter, mode=mode, cache="off", values=values, questionnaire=False)
    briefing_tokens: list[int] = []
    act = policy.act

    def counted_act(batch: Any) -> Any:
        meter.new_day()
        briefing_tokens.extend(len(tokenizer(t)["input_ids"]) for t in batch.texts)
        return act(batch)

    policy.act = counted_act  # type: ignore[method-assign]
    cfg = Config(n_agents=agents, max_days=days, seed=seed, briefing=briefing)
    run_community(cfg, "llm", seed=seed, policies={"llm": policy}, progress=False,
                  plots=False)
    resident_days = len(briefing_tokens)
    return {"briefing": briefing, "mode": mode, "resident_days": resident_days,
            "tokens": meter.tokens / resident_days,
            "calls": sum(policy.counter.rows) / resident_days,
            "briefing_tokens": float(np.mean(briefing_tokens)),
            "shared": meter.shared / max(meter.tokens, 1)}


def load_tokenizer(path: str | None, gguf_file: str | None = None) -> tuple[Any, str]:
    """The tokenizer named (a folder, hub id or ``.gguf`` file, or a folder or hub id with
    ``gguf_file``), or the tiny test model's (built in a temporary folder)."""
    from transformers import AutoTokenizer

    if path:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if gguf_file is None and path.lower().endswith(".gguf"):
            path, gguf_file = str(Path(path).parent), Path(path).name
        if gguf_file:
            return (AutoTokenizer.from_pretrained(path, gguf_file=gguf_file),
                    f"{Path(path) / gguf_file} (GGUF)")
        return AutoTokenizer.from_pretrained(path), path
    from civa_env.policies.llm.models.tiny import build_tiny_model

    folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    return AutoTokenizer.from_pretrained(folder), "test tokenizer (tiny model)"


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer folder, hub id or .gguf file (default: the test one)")
    parser.add_argument("--gguf-file", default=None,
                        help="the GGUF file in the --tokenizer folder or hub repository")
    parser.add_argument("--agents", type=int, default=25)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.gguf_file and not args.tokenizer:
        parser.error("--gguf-file names a file in the --tokenizer folder; pass --tokenizer too")
    tokenizer, name = load_tokenizer(args.tokenizer, args.gguf_file)
    print(f"Tokenizer: {name}; {args.agents} residents, {args.days} days, seed {args.seed}")
    print("| briefing | mode | resident-days | prompt tokens / resident-day | calls / "
          "resident-day | briefing tokens | shared prefix |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for briefing in ("v1", "v2"):
        for mode in ("combined", "full"):
            r = measure(tokenizer, briefing, mode, args.agents, args.days, args.seed)
            print(f"| {r['briefing']} | {r['mode']} | {r['resident_days']} | "
                  f"{r['tokens']:,.0f} | {r['calls']:.2f} | {r['briefing_tokens']:,.0f} | "
                  f"{r['shared']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
