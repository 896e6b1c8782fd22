"""Models without weights, for tests and stats: a scripted fake and a counting spy.

``FakeModel`` answers from a function of the prompt text and grammar, so the policy's parsing,
retry, fallback and transcript can be tested without a model. ``CountingModel`` wraps any
model with the same interface and counts its calls and rows (the policy keeps one in front of
its backend, so tests can check that a day is one batched call).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from civa_env.policies.llm.models.base import (
    Generation,
    Grammar,
    LanguageModel,
    Prompt,
    as_chat_text,
)


class FakeModel(LanguageModel):
    """Answers with ``respond(prompt_text, grammar) -> str``; records every call.

    Used in tests of the policy logic (parsing, retry, fallback, transcript) without weights.
    """

    def __init__(self, respond: Callable[[str, Grammar], str], name: str = "fake") -> None:
        self.respond = respond
        self.name = name
        self.calls: list[list[str]] = []

    @property
    def identity(self) -> str:
        """The fake's name."""
        return f"fake:{self.name}"

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        """Apply ``respond`` to each row."""
        texts = [as_chat_text(p) for p in prompts]
        self.calls.append(texts)
        grammars = list(grammars) if grammars is not None else [None] * len(texts)
        start = time.perf_counter()
        answers = [self.respond(t, g) for t, g in zip(texts, grammars, strict=True)]
        latency = time.perf_counter() - start
        return [Generation(a, len(t) // 4, len(a) // 4, latency) for t, a in
                zip(texts, answers, strict=True)]


def valid_answer(schema: dict[str, Any], rng: np.random.Generator | None = None) -> Any:
    """A value the JSON schema admits (the subset ``schema.answer_schema`` and the
    questionnaire use): the first option of every choice, or a random one with ``rng``."""
    def pick(options: Sequence[Any]) -> Any:
        return options[0] if rng is None else options[int(rng.integers(len(options)))]

    if "anyOf" in schema:
        return valid_answer(pick(schema["anyOf"]), rng)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return pick(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return {k: valid_answer(v, rng) for k, v in schema["properties"].items()}
    if kind == "array":
        n = 0 if rng is None else int(rng.integers(schema.get("maxItems", 1) + 1))
        return [valid_answer(schema["items"], rng) for _ in range(n)]
    if kind == "integer":
        lo, hi = int(schema.get("minimum", 0)), int(schema.get("maximum", 0))
        return lo if rng is None else int(rng.integers(lo, max(hi, lo) + 1))
    if kind == "string":
        return "ok"[: schema.get("maxLength", 2)]
    raise ValueError(f"valid_answer cannot build a value for the schema {schema!r}")


def schema_model(seed: int | None = None, free_text: str = "I think it over.") -> FakeModel:
    """A ``FakeModel`` that answers every constrained call with a valid JSON answer (the
    first options, or seeded random ones with ``seed``) and free-text calls with
    ``free_text``: a resident that plays by the rules, for tests and prompt benchmarks."""
    rng = None if seed is None else np.random.default_rng(seed)

    def respond(text: str, grammar: Grammar) -> str:
        if grammar is None:
            return free_text
        return json.dumps(valid_answer(grammar, rng))

    return FakeModel(respond, name="schema" if seed is None else f"schema-{seed}")


class CountingModel(LanguageModel):
    """Counts calls and rows of an inner model (a spy for tests and stats)."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner
        self.calls = 0
        self.rows: list[int] = []

    @property
    def identity(self) -> str:
        """The inner model's identity."""
        return self.inner.identity

    def generate(self, prompts: Sequence[Prompt], **kwargs: Any) -> list[Generation]:
        """Count, then delegate."""
        self.calls += 1
        self.rows.append(len(prompts))
        return self.inner.generate(prompts, **kwargs)

    def count_tokens(self, prompt: Prompt) -> int:
        """Delegate."""
        return self.inner.count_tokens(prompt)

    def close(self) -> None:
        """Delegate."""
        self.inner.close()
