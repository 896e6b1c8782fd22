"""Grammar-constrained decoding for transformers with llguidance, one JSON schema per row.

``JsonGrammarProcessor`` is a ``LogitsProcessor`` holding one ``llguidance.LLMatcher`` per
batch row: each step it feeds the row's last token to its matcher, computes the allowed-token
bitmask of all rows in parallel (``LLExecutor``) and sets the other logits to -inf. A row
whose grammar is complete may only end (EOS). Rows without a schema are left free. The
bitmask is unpacked with torch shifts rather than ``llguidance.torch.apply_token_bitmask_inplace``,
whose ``torch.compile`` costs seconds on the first CPU call.

Schemas are compiled with ``whitespace_flexible=False`` (compact JSON, fewer tokens).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch as llt
import torch
from transformers import LogitsProcessor

_SHIFTS = torch.arange(32, dtype=torch.int32)


@functools.lru_cache(maxsize=4096)
def compile_schema(schema_json: str) -> str:
    """The llguidance grammar of a JSON schema (given as canonical JSON text)."""
    return llguidance.LLMatcher.grammar_from_json_schema(
        schema_json, defaults={"whitespace_flexible": False})


def schema_text(schema: dict[str, Any]) -> str:
    """JSON text of a schema (the cache key of ``compile_schema``).

    Keys are not sorted: the order of ``properties`` is the order the answer is written in
    (a reflection before the action).
    """
    return json.dumps(schema, separators=(",", ":"))


def make_tokenizer(hf_tokenizer: Any, n_vocab: int, eos_ids: Sequence[int]) -> Any:
    """The llguidance tokenizer (costly: build once per model)."""
    return llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=n_vocab,
                                        eos_token=list(eos_ids) if len(eos_ids) > 1
                                        else int(eos_ids[0]))


class JsonGrammarProcessor(LogitsProcessor):
    """Per-row JSON-schema constraint for one ``generate`` call (matchers are stateful).

    Args:
        lltok: tokenizer from ``make_tokenizer``.
        schemas: one JSON schema or None (free) per batch row.
        eos_ids: tokens that end a row.
    """

    def __init__(self, lltok: Any, schemas: Sequence[dict[str, Any] | None],
                 eos_ids: Sequence[int]) -> None:
        self.rows = len(schemas)
        self.matchers: list[Any | None] = []
        for schema in schemas:
            if schema is None:
                self.matchers.append(None)
                continue
            matcher = llguidance.LLMatcher(lltok, compile_schema(schema_text(schema)))
            if matcher.is_error():
                raise ValueError(f"invalid JSON schema for constrained decoding: "
                                 f"{matcher.get_error()}")
            self.matchers.append(matcher)
        self.constrained = [k for k, m in enumerate(self.matchers) if m is not None]
        self.vocab = lltok.vocab_size
        self.mask = llt.allocate_token_bitmask(self.rows, self.vocab)
        self.executor = llguidance.LLExecutor()
        self.eos_ids = torch.tensor(list(eos_ids), dtype=torch.long)
        self.failed: set[int] = set()  # rows whose matcher rejected a token
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Mask ``scores`` (B, V) to the tokens each row's grammar allows next."""
        if not self.constrained:
            return scores
        if self.started:
            last = input_ids[:, -1].tolist()
            for k in self.constrained:
                m = self.matchers[k]
                if k in self.failed or m.is_stopped():
                    continue
                if not m.consume_token(last[k]):
                    self.failed.add(k)
        self.started = True
        live = [(self.matchers[k], k) for k in self.constrained
                if k not in self.failed and not self.matchers[k].is_stopped()]
        if live:
            llt.fill_next_token_bitmask_par(self.executor, live, self.mask)
        bits = ((self.mask.unsqueeze(-1) >> _SHIFTS) & 1).bool().view(self.rows, -1)
        width = scores.shape[1]
        if bits.shape[1] < width:  # model vocab larger than the grammar's: tail disallowed
            bits = torch.nn.functional.pad(bits, (0, width - bits.shape[1]))
        bits = bits[:, :width]
        allow = torch.ones_like(scores, dtype=torch.bool)
        rows = torch.tensor(self.constrained, dtype=torch.long)
        allow[rows] = bits[rows].to(scores.device)
        # Finished or failed rows may only end.
        done = [k for k in self.constrained
                if k in self.failed or self.matchers[k].is_stopped()]
        if done:
            ends = torch.zeros(width, dtype=torch.bool)
            ends[self.eos_ids[self.eos_ids < width]] = True
            allow[torch.tensor(done, dtype=torch.long)] = ends.to(scores.device)
        return scores.masked_fill(~allow, float("-inf"))

    def complete(self, k: int) -> bool:
        """Whether row k's answer satisfies its grammar (True for free rows)."""
        m = self.matchers[k]
        return m is None or (k not in self.failed and (m.is_stopped() or m.is_accepting()))
