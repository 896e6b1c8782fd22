"""LLM residents: a batched language-model policy (``make_policy("llm", model=...)``).

Heavy dependencies (torch, transformers, llguidance, vllm) are imported only when a model is
loaded, so ``import civa_env`` stays light. See docs/llm.md. The modules:

* ``policy``: ``LLMPolicy``, the daily cycle (batched phases, check, retry, fallback).
* ``schema``: per-resident JSON schemas of an answer and the check of a parsed answer.
* ``options``: the policy's and the backends' options, their ``key=value`` coercion.
* ``prompts``: loading the versioned prompt files (``prompts/<version>/*.txt``).
* ``transcript``: the transcript, prompts and stats files in a run folder.
* ``models``: the language-model interface, its wrappers, fakes and backends.
* ``annotator``: an LLM that labels a run's messages (sycophancy, deception...).
"""

from __future__ import annotations

from typing import Any

from civa_env.policies.base import Policy, register_policy


def make_llm_policy(model: Any = None, backend: str = "hf", **options: Any) -> Policy:
    """Build an ``LLMPolicy``; ``options`` may be ``key=value`` strings' values (coerced).

    Args:
        model: hub id (``Qwen/Qwen2.5-1.5B-Instruct``), local folder or ``LanguageModel``.
        backend: ``hf`` (transformers, default) or ``vllm``.
        **options: policy options (mode, temperature, constrained, cache...) and backend
            options (device, dtype, max_batch_size...); see ``LLMPolicy``.
    """
    from civa_env.policies.llm.options import normalise
    from civa_env.policies.llm.policy import LLMPolicy

    if model is None:
        raise ValueError("the llm policy needs a model: --model <hub id or folder> "
                         "(e.g. Qwen/Qwen2.5-1.5B-Instruct)")
    return LLMPolicy(model, backend, **normalise(options))


register_policy("llm", make_llm_policy)

__all__ = ["make_llm_policy"]
