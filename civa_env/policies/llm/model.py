"""The batch-first language-model interface, its same-signature wrappers and a fake.

A backend turns a batch of prompts into a batch of generations in one call::

    model.generate(prompts, max_new_tokens=96, temperature=0.0, seed=0, grammars=schemas)

A prompt is a chat (a list of ``{"role", "content"}`` messages) or a plain string (one user
message); a grammar is a JSON schema (dict) that row's answer must match, or None. Backends
apply the model's chat template themselves.

Wrappers with the same signature add one concern each (as Concordia's wrappers do):
``CachedModel`` (an on-disk cache keyed by model identity, prompt, schema and sampling, so a
greedy rerun costs no inference) and ``CountingModel`` (calls and rows, for tests and stats).
``FakeModel`` answers from a function, for tests that need no weights.
"""

from __future__ import annotations

import abc
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Prompt = str | list[dict[str, str]]
Grammar = dict[str, Any] | None


@dataclass
class Generation:
    """One row's answer."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0  # seconds of the call that produced it (shared by its batch)
    finish: str = "stop"  # "stop" (end of turn or grammar complete) or "length"
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"text": self.text, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency": self.latency,
                "finish": self.finish}


class PromptTooLongError(ValueError):
    """A prompt does not fit the model's context; ``index`` is its row in the batch."""

    def __init__(self, index: int, prompt_tokens: int, max_new_tokens: int, limit: int) -> None:
        self.index, self.prompt_tokens = index, prompt_tokens
        self.max_new_tokens, self.limit = max_new_tokens, limit
        super().__init__(
            f"prompt {index} has {prompt_tokens} tokens; with max_new_tokens={max_new_tokens} "
            f"it exceeds the model's context of {limit} tokens. Shorten the briefing "
            f"(Config.max_text_chars), the memory (llm option memory_chars) or max_new_tokens, "
            f"or use a model with a longer context.")


class LanguageModel(abc.ABC):
    """A batch-first text generator."""

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """A string that changes whenever the weights, tokenizer or template change."""

    @abc.abstractmethod
    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        """One generation per prompt, all in one batched call where the backend can.

        Args:
            prompts: chats or strings, one per row.
            max_new_tokens: cap on generated tokens per row.
            temperature: 0 = greedy.
            seed: sampling seed (ignored when greedy).
            grammars: per-row JSON schema (or None = free text); None = all free.

        Raises:
            PromptTooLongError: a prompt does not fit the context.
        """

    def count_tokens(self, prompt: Prompt) -> int:
        """Prompt length in tokens (after the chat template); approximate by default."""
        return len(as_chat_text(prompt)) // 4

    def close(self) -> None:  # noqa: B027
        """Release the weights and any worker."""


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    """The chat form of a prompt."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def as_chat_text(prompt: Prompt) -> str:
    """A plain rendering (for fakes, hashing and logs)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"<{m['role']}>\n{m['content']}" for m in prompt)


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


def cache_key(identity: str, prompt: Prompt, grammar: Grammar, max_new_tokens: int,
              temperature: float, seed: int | None) -> str:
    """sha256 of everything that decides an answer."""
    # The grammar keeps its key order (property order is answer order).
    grammar_text = None if grammar is None else json.dumps(grammar, separators=(",", ":"))
    payload = json.dumps({"model": identity, "prompt": as_messages(prompt), "grammar": grammar_text,
                          "max_new_tokens": max_new_tokens, "temperature": temperature,
                          "seed": seed if temperature > 0 else None},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class CachedModel(LanguageModel):
    """An on-disk answer cache in front of a model (sqlite, one row per answer).

    Greedy answers are cached by default; sampled answers only with ``cache_sampled=True``
    (their key includes the seed, but batched sampling is not row-deterministic, so a replay
    gives the recorded answer rather than a fresh sample). Only the rows that miss go to the
    inner model, in one batched call.
    """

    def __init__(self, inner: LanguageModel, path: str | Path, *,
                 cache_sampled: bool = False) -> None:
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cache_sampled = cache_sampled
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT)")
        self._db.commit()

    @property
    def identity(self) -> str:
        """The inner model's identity."""
        return self.inner.identity

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        """Cached rows from disk, the rest from the inner model (then stored)."""
        grammars = list(grammars) if grammars is not None else [None] * len(prompts)
        use = temperature <= 0 or self.cache_sampled
        if not use:
            return self.inner.generate(prompts, max_new_tokens=max_new_tokens,
                                       temperature=temperature, seed=seed, grammars=grammars)
        ident = self.inner.identity
        keys = [cache_key(ident, p, g, max_new_tokens, temperature, seed)
                for p, g in zip(prompts, grammars, strict=True)]
        out: list[Generation | None] = [None] * len(prompts)
        with self._lock:
            for k, key in enumerate(keys):
                row = self._db.execute("SELECT value FROM answers WHERE key = ?",
                                       (key,)).fetchone()
                if row is not None:
                    d = json.loads(row[0])
                    out[k] = Generation(d["text"], d["prompt_tokens"], d["completion_tokens"],
                                        0.0, d.get("finish", "stop"), cached=True)
        missing = [k for k, g in enumerate(out) if g is None]
        self.hits += len(prompts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self.inner.generate([prompts[k] for k in missing],
                                        max_new_tokens=max_new_tokens, temperature=temperature,
                                        seed=seed, grammars=[grammars[k] for k in missing])
            with self._lock:
                for k, gen in zip(missing, fresh, strict=True):
                    out[k] = gen
                    self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)",
                                     (keys[k], json.dumps(gen.to_dict())))
                self._db.commit()
        return [g for g in out if g is not None]

    def count_tokens(self, prompt: Prompt) -> int:
        """Delegate."""
        return self.inner.count_tokens(prompt)

    def close(self) -> None:
        """Close the database and the inner model."""
        with self._lock:
            self._db.close()
        self.inner.close()


def load_model(model: str | LanguageModel, backend: str = "hf", **options: Any) -> LanguageModel:
    """A backend by name: ``hf`` (transformers) or ``vllm``; a LanguageModel passes through."""
    if isinstance(model, LanguageModel):
        return model
    if backend == "hf":
        from civa_env.policies.llm.hf import HFModel

        return HFModel(model, **options)
    if backend == "vllm":
        from civa_env.policies.llm.vllm import VLLMModel

        return VLLMModel(model, **options)
    raise ValueError(f"unknown LLM backend {backend!r}; use 'hf' (transformers) or 'vllm'")
