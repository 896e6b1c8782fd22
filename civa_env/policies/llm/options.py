"""The LLM policy's options: their names and types, ``key=value`` coercion, the cache path.

Options split in two: those of the policy (``OPTIONS``: the daily cycle, sampling, the
cache, text lengths, prompts, the token budget and prices) and those passed on to the
backend (``BACKEND_OPTIONS``: device, dtype, batching, CPU threads, engine settings, the
server of the ``openai`` backend). Their defaults are those of ``LLMPolicy`` and of
the backends' constructors. On the command line every value arrives as a string
(``--llm-option key=value``); ``normalise`` turns the strings into the options' types and
rejects unknown names before any model is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Policy options (the rest go to the backend), with their types for ``key=value`` strings.
OPTIONS: dict[str, type] = {
    "mode": str, "temperature": float, "seed": int, "max_new_tokens": int,
    "max_new_tokens_cap": int, "constrained": bool, "retry": bool, "cache": str,
    "cache_sampled": bool, "reflection_chars": int, "plan_chars": int, "memory_chars": int,
    "message_chars": int, "prompt_version": str, "values": str, "reasoning": bool,
    "reasoning_words": int, "questionnaire": bool, "questionnaire_every": int,
    "max_tokens_total": int, "price_per_mtok_in": float, "price_per_mtok_out": float,
}
BACKEND_OPTIONS: dict[str, type] = {
    "device": str, "dtype": str, "max_batch_size": int, "chat_template": str, "tokenizer": str,
    "gguf_file": str,
    "attn_implementation": str, "compile": bool, "trust_remote_code": bool,
    "gpu_memory_utilization": float, "max_model_len": int, "tensor_parallel_size": int,
    "enable_prefix_caching": bool, "structured_backend": str,
    "threads": int,
    "base_url": str, "api_key_env": str, "max_concurrency": int, "timeout_s": float,
    "max_retries": int, "backoff_s": float,
}
CACHE_OFF = (None, "", "off", "none", "false")  # values of ``cache`` that disable it


def coerce(key: str, value: Any) -> Any:
    """Turn a ``--llm-option key=value`` string into the option's type."""
    kind = OPTIONS.get(key) or BACKEND_OPTIONS.get(key)
    if not isinstance(value, str) or kind in (None, str):
        return value
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"llm option {key} must be true or false, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"llm option {key} must be a {kind.__name__}, got {value!r}") from None


def normalise(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options with ``-`` in names read as ``_`` and string values coerced.

    Raises:
        ValueError: an unknown option (naming the known ones) or a value of the wrong type.
    """
    out = {k.replace("-", "_"): coerce(k.replace("-", "_"), v) for k, v in options.items()}
    unknown = sorted(set(out) - set(OPTIONS) - set(BACKEND_OPTIONS))
    if unknown:
        raise ValueError(f"unknown llm option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(OPTIONS))} (policy) and "
                         f"{', '.join(sorted(BACKEND_OPTIONS))} (backend)")
    return out


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/civa_env/llm_cache.sqlite`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "civa_env" / "llm_cache.sqlite"


def cache_path(cache: str | None) -> Path | None:
    """The sqlite file the ``cache`` option names: ``default``, a path, or None when off."""
    if cache in CACHE_OFF:
        return None
    return default_cache_path() if cache == "default" else Path(cache)
