"""The language-model layer: one interface, same-interface wrappers, fakes and backends.

* ``base``: the ``LanguageModel`` interface, ``Generation``, ``PromptTooLongError``.
* ``cache``: ``CachedModel``, the sqlite answer cache in front of any model.
* ``fake``: ``FakeModel`` (answers from a function) and ``CountingModel`` (counts calls).
* ``hf``: ``HFModel``, the transformers backend (torch, transformers).
* ``vllm``: ``VLLMModel``, the vLLM backend (CUDA).
* ``openai_server``: ``OpenAIModel``, any OpenAI-compatible chat-completions server (httpx).
* ``constrained``: the llguidance logits processor the transformers backend decodes with.
* ``tiny``: random-weight models built locally, for tests and benchmarks.

``load_model`` builds a backend by name. Only ``base`` is imported here; the backends import
their heavy dependencies when a model is loaded.
"""

from __future__ import annotations

import inspect
from typing import Any

from civa_env.policies.llm.models.base import LanguageModel


def load_model(model: str | LanguageModel, backend: str = "hf", **options: Any) -> LanguageModel:
    """A backend by name: ``hf`` (transformers), ``vllm`` or ``openai`` (an OpenAI-compatible
    server); a LanguageModel passes through."""
    if isinstance(model, LanguageModel):
        return model
    if backend == "hf":
        from civa_env.policies.llm.models.hf import HFModel

        return _build(HFModel, backend, model, options)
    if backend == "vllm":
        from civa_env.policies.llm.models.vllm import VLLMModel

        return _build(VLLMModel, backend, model, options)
    if backend == "openai":
        from civa_env.policies.llm.models.openai_server import OpenAIModel

        return _build(OpenAIModel, backend, model, options)
    raise ValueError(f"unknown LLM backend {backend!r}; use 'hf' (transformers), 'vllm' or "
                     f"'openai' (an OpenAI-compatible server)")


def _build(cls: type, backend: str, model: str, options: dict[str, Any]) -> LanguageModel:
    """``cls(model, **options)``, refusing by name an option the backend does not take."""
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = sorted(k for k in params if k != "model")
            raise ValueError(f"llm option(s) {', '.join(unknown)} do not apply to the "
                             f"{backend} backend; it takes {', '.join(known)}")
    return cls(model, **options)


__all__ = ["LanguageModel", "load_model"]
