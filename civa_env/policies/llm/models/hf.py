"""The transformers backend: any local causal LM (a hub id, a folder or a GGUF file), batched.

One ``model.generate`` call serves all prompts of a batch (split into chunks only when
``max_batch_size`` is set). Decoder-only batching needs left padding and an explicit pad
token; pad and end-of-turn ids go on ``generation_config`` (transformers 5 reads generation
settings only there). On a GPU the weights load in bfloat16, on the CPU in float32. JSON
schemas become per-row llguidance constraints (``constrained.JsonGrammarProcessor``).

A GGUF file (``model.gguf``, or a folder holding exactly one, or ``gguf_file=`` in a hub
repository) loads through transformers' GGUF support: tokenizer, chat template and weights
come from the file, the weights de-quantised to the load dtype (needs the ``gguf`` and
``accelerate`` packages).

Loading problems raise ``ModelLoadError`` with what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from civa_env.policies.llm.models.base import (
    Generation,
    Grammar,
    LanguageModel,
    Prompt,
    PromptTooLongError,
    as_messages,
)

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
               "<|end_of_text|>")
PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
GGUF_MAGIC = b"GGUF"
# What transformers and gguf raise for a GGUF file they cannot load (unsupported
# architecture or tokenizer, unknown quantisation type, truncated file).
GGUF_ERRORS = (OSError, ValueError, TypeError, KeyError, NotImplementedError)


class ModelLoadError(ValueError):
    """A model or tokenizer that cannot be used, with the reason and the fix.

    A ``ValueError``: it is bad input (a model folder or option), reported by ``civa`` as one
    line.
    """


def _local_source(path: Path, gguf_file: str | None) -> tuple[Path, str | None]:
    """The folder to load from and the GGUF file in it (None: a transformers folder).

    A ``.gguf`` file, a folder with ``gguf_file``, or a folder without transformers weights
    that holds exactly one ``.gguf`` is a GGUF model; any other folder must be a complete
    transformers folder.
    """
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(
                f"model path {path} is a file but not a .gguf; pass a model folder (config.json, "
                f"weights, tokenizer files) or a GGUF file")
        return path.parent, path.name
    if gguf_file:
        if not (path / gguf_file).is_file():
            raise ModelLoadError(f"GGUF file {path / gguf_file} does not exist "
                                 f"(gguf_file={gguf_file!r} in the model folder {path})")
        return path, gguf_file
    ggufs = sorted(f.name for f in path.glob("*.gguf") if f.is_file())
    if ggufs and not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        if len(ggufs) > 1:
            raise ModelLoadError(
                f"model folder {path} holds {len(ggufs)} GGUF files ({', '.join(ggufs)}); "
                f"pass one of them as the model, e.g. --model {path / ggufs[0]} (or the llm "
                f"option gguf_file={ggufs[0]})")
        return path, ggufs[0]
    _check_folder(path)
    return path, None


def _check_gguf(file: Path) -> None:
    """A readable GGUF file, and the packages transformers needs to load it."""
    with file.open("rb") as f:
        magic = f.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{file} is not a GGUF file (it does not start with the GGUF "
                             f"magic bytes); pass a .gguf model file or a model folder")
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelLoadError(f"loading a GGUF file needs the {' and '.join(missing)} "
                             f"package(s): pip install -e .[llm]")


def _gguf_error(file: str, err: BaseException) -> ModelLoadError:
    """transformers' or gguf's complaint about a GGUF file, with what to do about it."""
    text = str(err)
    if "architecture" in text and "not supported" in text:
        try:
            from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
        except ImportError:  # an internal module: a later transformers may move it
            GGUF_SUPPORTED_ARCHITECTURES = []
        known = [a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer")]
        hint = ("transformers' GGUF loader does not know this architecture"
                + (f" (it loads {', '.join(known)})" if known else "")
                + "; use the model's transformers folder (safetensors) instead")
    elif "quantiz" in text.lower():
        hint = ("the gguf package cannot de-quantise this quantisation type; use a file with "
                "another quantisation (F16, Q8_0, Q4_0, Q4_1, Q4_K_M... load)")
    else:
        hint = "check that the file is complete, or use the model's transformers folder"
    reason = text.splitlines()[0].rstrip(".") if text else type(err).__name__
    return ModelLoadError(f"cannot load the GGUF file {file} ({reason}); {hint}")


def _check_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"malformed model folder {path}: no config.json. A model folder is what "
            f"save_pretrained writes (config.json, weights, tokenizer files); pass such a "
            f"folder or a hub id such as Qwen/Qwen2.5-1.5B-Instruct.")
    try:
        json.loads((path / "config.json").read_text())
    except ValueError as err:
        raise ModelLoadError(f"malformed model folder {path}: config.json is not valid JSON "
                             f"({err})") from err
    if not any(any(path.glob(p)) for p in WEIGHT_PATTERNS):
        raise ModelLoadError(
            f"malformed model folder {path}: no weights (*.safetensors, pytorch_model*.bin or "
            f"one .gguf). Download the model completely or save it with "
            f"model.save_pretrained(folder).")
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ModelLoadError(
            f"model folder {path} has no tokenizer (tokenizer.json, tokenizer.model, "
            f"vocab.json or tokenizer_config.json). Save it next to the weights with "
            f"tokenizer.save_pretrained(folder), or pass tokenizer=<id or folder>.")


class HFModel(LanguageModel):
    """A transformers causal LM behind the batch-first interface.

    Args:
        model: hub id, local folder or ``.gguf`` file (a folder holding exactly one ``.gguf``
            and no transformers weights loads that file).
        tokenizer: hub id or folder of the tokenizer (default: the model's, or the GGUF
            file's).
        gguf_file: the GGUF file to load from a hub repository or folder holding several.
        device: ``auto`` (cuda when available), ``cuda``, ``cpu``, ``cuda:1``...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU) or a torch dtype name.
        max_batch_size: split larger batches into chunks of this many rows (sorted by
            length); None = one call for the whole batch.
        chat_template: a Jinja template (text or a file path) for models without one.
        attn_implementation: passed to ``from_pretrained`` (``sdpa`` by default).
        compile: ``torch.compile`` the forward pass (GPU; static cache).
        trust_remote_code: passed to ``from_pretrained``.
        threads: torch's CPU threads (``civa_env.policies.threads``); None: one under
            pytest-xdist workers, else torch's default capped at the CPUs available.
    """

    def __init__(self, model: str | os.PathLike, *, tokenizer: str | None = None,
                 gguf_file: str | None = None, device: str = "auto", dtype: str = "auto",
                 max_batch_size: int | None = None, chat_template: str | None = None,
                 attn_implementation: str | None = None, compile: bool = False,
                 trust_remote_code: bool = False,
                 threads: int | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as err:
            raise ModelLoadError(f"the hf backend needs torch and transformers ({err}): "
                                 f"pip install torch, then pip install -e .[llm]") from err
        from civa_env.policies.threads import torch_threads

        self.threads = torch_threads(threads)

        self.name = str(model)
        path = Path(model).expanduser()
        local = path.exists()
        if local:
            path, gguf_file = _local_source(path, gguf_file)
            if gguf_file:
                _check_gguf(path / gguf_file)
        elif path.suffix.lower() == ".gguf":
            raise ModelLoadError(f"GGUF file {path} does not exist")
        elif self.name.startswith(("/", ".", "~")) or self.name.count("/") > 1:
            raise ModelLoadError(f"model folder {path} does not exist (and {self.name!r} is "
                                 f"not a hub id of the form org/name)")
        source = str(path) if local else self.name
        self.gguf_file = gguf_file
        from_file = {"gguf_file": gguf_file} if gguf_file else {}
        errors = GGUF_ERRORS if gguf_file else (OSError, ValueError, TypeError, KeyError)
        shown = str(path / gguf_file) if local and gguf_file else f"{source}:{gguf_file}"
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        tok_source = tokenizer or source
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                tok_source, padding_side="left", trust_remote_code=trust_remote_code,
                **({} if tokenizer else from_file))
        except errors as err:
            if gguf_file and not tokenizer:
                raise _gguf_error(shown, err) from err
            raise ModelLoadError(
                f"cannot load the tokenizer of {tok_source}: {err}. Check that the folder or "
                f"hub id holds tokenizer files, or pass tokenizer=<id or folder>.") from err
        if not getattr(self.tokenizer, "is_fast", True):
            raise ModelLoadError(f"the tokenizer of {tok_source} is not a fast tokenizer; "
                                 f"constrained decoding needs tokenizer.json")
        self.tokenizer.padding_side = "left"
        if chat_template:
            template_path = Path(chat_template).expanduser()
            self.tokenizer.chat_template = (template_path.read_text()
                                            if template_path.is_file() else chat_template)
        if not self.tokenizer.chat_template and gguf_file and not tokenizer:
            raise ModelLoadError(
                f"the GGUF file {shown} has no chat template (no tokenizer.chat_template in its "
                f"metadata: a base model?). Use an instruction-tuned model's GGUF or pass "
                f"chat_template=<Jinja text or file> (llm option chat_template=...).")
        if not self.tokenizer.chat_template:
            raise ModelLoadError(
                f"the tokenizer of {tok_source} has no chat template (an instruction-tuned "
                f"model ships chat_template.jinja or a chat_template entry in "
                f"tokenizer_config.json). Use an -Instruct/-Chat model or pass "
                f"chat_template=<Jinja text or file> (llm option chat_template=...).")
        try:
            kwargs: dict[str, Any] = {"dtype": torch_dtype,
                                      "trust_remote_code": trust_remote_code}
            if attn_implementation:
                kwargs["attn_implementation"] = attn_implementation
            self.model = AutoModelForCausalLM.from_pretrained(source, **kwargs, **from_file)
        except errors as err:
            if gguf_file:
                raise _gguf_error(shown, err) from err
            raise ModelLoadError(f"cannot load the model {source}: {err}") from err
        self.model.to(self.device).eval()
        self._setup_special_tokens()
        self.context = self._context_length()
        self._lltok = None
        self._identity = self._make_identity(path if local else None, gguf_file)
        self.compiled = False
        if compile:
            self.model.generation_config.cache_implementation = "static"
            self.model.forward = torch.compile(self.model.forward, mode="reduce-overhead")
            self.compiled = True
        self.max_batch_size = max_batch_size
        self.calls = 0

    # ---- setup ----------------------------------------------------------------------------
    def _setup_special_tokens(self) -> None:
        tok, gen = self.tokenizer, self.model.generation_config
        vocab = tok.get_vocab()
        if tok.pad_token_id is None:
            pad = next((p for p in PAD_CANDIDATES if p in vocab), None)
            if pad is not None:
                tok.pad_token = pad
            else:
                tok.pad_token = tok.eos_token
        eos: list[int] = []
        for source in (gen.eos_token_id, tok.eos_token_id):
            if source is None:
                continue
            for t in source if isinstance(source, list) else [source]:
                if t not in eos:
                    eos.append(int(t))
        for word in END_OF_TURN:
            if word in vocab and vocab[word] not in eos and word in tok.all_special_tokens:
                eos.append(vocab[word])
        if not eos:
            raise ModelLoadError(f"{self.name}: the tokenizer defines no end-of-sequence token")
        self.eos_ids = eos
        gen.pad_token_id = tok.pad_token_id
        gen.eos_token_id = eos

    def _context_length(self) -> int:
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length",
                    "seq_length"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if isinstance(limit, int) and limit < 10**7 else 4096

    def _make_identity(self, folder: Path | None, gguf_file: str | None = None) -> str:
        h = hashlib.sha256(self.name.encode())
        h.update((self.tokenizer.chat_template or "").encode())
        if folder is not None:
            files = [folder / gguf_file] if gguf_file else sorted(folder.iterdir())
            for f in files:
                if f.is_file():
                    st = f.stat()
                    h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        else:
            h.update(str(getattr(self.model.config, "_commit_hash", "")).encode())
        return f"hf:{self.name}:{h.hexdigest()[:16]}"

    @property
    def identity(self) -> str:
        """Name plus a hash of the folder's files (or the hub commit) and chat template."""
        return self._identity

    @property
    def lltokenizer(self) -> Any:
        """The llguidance tokenizer, built on first use."""
        if self._lltok is None:
            from civa_env.policies.llm.models.constrained import make_tokenizer

            n_vocab = max(self.model.config.vocab_size, len(self.tokenizer))
            self._lltok = make_tokenizer(self.tokenizer, n_vocab, self.eos_ids)
        return self._lltok

    # ---- generation -----------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        """The prompt with the chat template applied, ready for the assistant's turn."""
        return self.tokenizer.apply_chat_template(as_messages(prompt), tokenize=False,
                                                  add_generation_prompt=True)

    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens of the rendered prompt."""
        return len(self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"])

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        """One ``model.generate`` call for the batch (or per chunk of ``max_batch_size``)."""
        if not prompts:
            return []
        grammars = list(grammars) if grammars is not None else [None] * len(prompts)
        texts = [self.render(p) for p in prompts]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        for k, row in enumerate(ids):
            if len(row) + max_new_tokens > self.context:
                raise PromptTooLongError(k, len(row), max_new_tokens, self.context)
        order = list(range(len(texts)))
        size = self.max_batch_size or len(texts)
        if size < len(texts):
            order.sort(key=lambda k: len(ids[k]))  # less padding per chunk
        out: list[Generation | None] = [None] * len(texts)
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            gens = self._generate_chunk([texts[k] for k in chunk], [grammars[k] for k in chunk],
                                        max_new_tokens, temperature, seed)
            for k, g in zip(chunk, gens, strict=True):
                out[k] = g
        return [g for g in out if g is not None]

    def _generate_chunk(self, texts: list[str], grammars: list[Grammar], max_new_tokens: int,
                        temperature: float, seed: int | None) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self.device)
        processors = LogitsProcessorList()
        grammar_proc = None
        if any(g is not None for g in grammars):
            from civa_env.policies.llm.models.constrained import JsonGrammarProcessor

            grammar_proc = JsonGrammarProcessor(self.lltokenizer, grammars, self.eos_ids)
            processors.append(grammar_proc)
        sample = temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": sample,
                                  "logits_processor": processors,
                                  "pad_token_id": self.tokenizer.pad_token_id,
                                  "eos_token_id": self.eos_ids}
        if sample:
            kwargs.update(temperature=temperature, top_p=1.0, top_k=0)
            if seed is not None:
                torch.manual_seed(seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        start = time.perf_counter()
        with torch.inference_mode():
            result = self.model.generate(**enc, **kwargs)
        latency = time.perf_counter() - start
        self.calls += 1
        new = result[:, enc["input_ids"].shape[1]:].cpu()
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        eos = torch.tensor(self.eos_ids)
        out = []
        for k in range(new.shape[0]):
            row = new[k].tolist()
            is_end = torch.isin(new[k], eos).nonzero()
            n = int(is_end[0]) + 1 if len(is_end) else len(row)
            finish = "stop" if len(is_end) else "length"
            if grammar_proc is not None and not grammar_proc.complete(k):
                finish = "length" if finish == "length" else "grammar"
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            out.append(Generation(text, int(prompt_lens[k]), n, latency, finish))
        return out

    def close(self) -> None:
        """Free the weights (and GPU memory)."""
        import torch

        self.model = None  # type: ignore[assignment]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
