"""LLM residents: a batched language-model policy (``make_policy("llm", model=...)``).

Heavy dependencies (torch, transformers, llguidance, vllm) are imported only when a model is
loaded, so ``import civa_env`` stays light. See ``policy.LLMPolicy`` and docs/llm.md.
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
    from civa_env.policies.llm.policy import BACKEND_OPTIONS, OPTIONS, LLMPolicy, coerce

    if model is None:
        raise ValueError("the llm policy needs a model: --model <hub id or folder> "
                         "(e.g. Qwen/Qwen2.5-1.5B-Instruct)")
    options = {k.replace("-", "_"): coerce(k.replace("-", "_"), v) for k, v in options.items()}
    unknown = sorted(set(options) - set(OPTIONS) - set(BACKEND_OPTIONS))
    if unknown:
        raise ValueError(f"unknown llm option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(OPTIONS))} (policy) and "
                         f"{', '.join(sorted(BACKEND_OPTIONS))} (backend)")
    return LLMPolicy(model, backend, **options)


register_policy("llm", make_llm_policy)

__all__ = ["make_llm_policy"]
