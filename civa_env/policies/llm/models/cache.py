"""An on-disk answer cache in front of any model, with the same interface.

Each answer is one sqlite row keyed by the sha256 of everything that decides it: the model's
identity, the prompt, the grammar and the sampling settings. A greedy rerun (or a replay of a
run) therefore costs no inference; only the rows that miss go to the inner model, in one
batched call.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from civa_env.policies.llm.models.base import (
    Generation,
    Grammar,
    LanguageModel,
    Prompt,
    as_messages,
)


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
