"""The batch-first language-model interface and its small types.

A backend turns a batch of prompts into a batch of generations in one call::

    model.generate(prompts, max_new_tokens=96, temperature=0.0, seed=0, grammars=schemas)

A prompt is a chat (a list of ``{"role", "content"}`` messages) or a plain string (one user
message); a grammar is a JSON schema (dict) that row's answer must match, or None. Backends
apply the model's chat template themselves.

The rest of the package implements it: wrappers with the same signature that add one concern
each (``cache.CachedModel``, ``fake.CountingModel``), a fake that needs no weights
(``fake.FakeModel``) and the backends (``hf.HFModel``, ``vllm.VLLMModel``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
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
