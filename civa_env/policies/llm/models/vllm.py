"""The optional vLLM backend (extra ``vllm``; GPU): per-request JSON schemas via structured outputs.

vLLM schedules the whole batch itself (continuous batching, paged KV cache, prefix caching
of the shared system prompt) and computes grammar masks inside its engine. Each request
carries its own ``SamplingParams`` with ``StructuredOutputsParams(json=schema)``, so every
resident gets its own schema in one ``generate`` call. vLLM before 0.12 named these
``GuidedDecodingParams``/``guided_decoding``; both spellings are supported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from civa_env.policies.llm.models.base import (
    Generation,
    Grammar,
    LanguageModel,
    Prompt,
    PromptTooLongError,
    as_messages,
)


def _structured(schema: dict[str, Any]) -> dict[str, Any]:
    """SamplingParams keyword for a JSON schema, for the installed vLLM."""
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=schema,
                                                              disable_any_whitespace=True)}
    except ImportError:  # vLLM < 0.12
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}


class VLLMModel(LanguageModel):
    """A vLLM engine behind the batch-first interface.

    Args:
        model: hub id or folder.
        dtype: ``bfloat16`` by default.
        max_model_len: context length to reserve (None: the model's).
        gpu_memory_utilization: share of GPU memory vLLM may take.
        tensor_parallel_size: GPUs to shard over.
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes.
        structured_backend: ``guidance`` (llguidance, default), ``xgrammar`` or ``auto``.
        chat_template: a Jinja template for models without one.
        **engine: further ``vllm.LLM`` arguments.
    """

    def __init__(self, model: str, *, dtype: str = "bfloat16", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1,
                 enable_prefix_caching: bool = True, structured_backend: str = "guidance",
                 chat_template: str | None = None, seed: int = 0, **engine: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError("the vllm backend needs vLLM: pip install -e .[vllm] (a CUDA "
                              "machine; vLLM pins its own torch and transformers)") from err
        self.name = model
        self.llm = LLM(model=model, dtype=dtype, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization,
                       tensor_parallel_size=tensor_parallel_size,
                       enable_prefix_caching=enable_prefix_caching, seed=seed,
                       structured_outputs_config={"backend": structured_backend}, **engine)
        self.tokenizer = self.llm.get_tokenizer()
        if chat_template:
            self.tokenizer.chat_template = chat_template
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer of {model} has no chat template; use an "
                             f"instruction-tuned model or pass chat_template=...")
        self.context = int(self.llm.llm_engine.model_config.max_model_len)

    @property
    def identity(self) -> str:
        """vLLM name (hub ids are pinned by the local snapshot)."""
        return f"vllm:{self.name}"

    def render(self, prompt: Prompt) -> str:
        """The prompt with the chat template applied."""
        return self.tokenizer.apply_chat_template(as_messages(prompt), tokenize=False,
                                                  add_generation_prompt=True)

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens of the rendered prompt."""
        return len(self.tokenizer.encode(self.render(prompt), add_special_tokens=False))

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        """One ``LLM.generate`` call with per-request sampling params."""
        from vllm import SamplingParams

        grammars = list(grammars) if grammars is not None else [None] * len(prompts)
        texts = [self.render(p) for p in prompts]
        for k, text in enumerate(texts):
            n = len(self.tokenizer.encode(text, add_special_tokens=False))
            if n + max_new_tokens > self.context:
                raise PromptTooLongError(k, n, max_new_tokens, self.context)
        params = []
        for k, schema in enumerate(grammars):
            extra = _structured(schema) if schema is not None else {}
            params.append(SamplingParams(
                temperature=temperature, max_tokens=max_new_tokens,
                seed=None if seed is None or temperature <= 0 else seed + k, **extra))
        start = time.perf_counter()
        outputs = self.llm.generate(texts, params, use_tqdm=False)
        latency = time.perf_counter() - start
        out = []
        for o in outputs:
            c = o.outputs[0]
            out.append(Generation(c.text, len(o.prompt_token_ids), len(c.token_ids), latency,
                                  "length" if c.finish_reason == "length" else "stop"))
        return out

    def close(self) -> None:
        """Drop the engine."""
        self.llm = None
