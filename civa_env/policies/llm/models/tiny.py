"""Random-weight models built locally, without downloads: for tests and throughput benchmarks.

``build_tiny_model`` trains a small byte-level BPE tokenizer in-process, builds a 2-layer Llama
with random weights and saves both (with a chat template) to a folder that loads like any
hub model. ``build_random_shape`` does the same with the layer shapes of a real model
(``qwen2.5-1.5b``...), so its speed is that model's speed; its answers are noise, which
constrained decoding still turns into valid actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIALS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

# Layer shapes of real models (from their public config.json files).
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": dict(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         tie_word_embeddings=True),
    "qwen2.5-7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                       num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       tie_word_embeddings=False),
    "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         tie_word_embeddings=True),
}


def _corpus() -> list[str]:
    from civa_env.world.kinds import Primary, Secondary

    words = [p.name.lower() for p in Primary] + [s.name.lower() for s in Secondary]
    lines = [
        "You are resident_3. Day 2 of 30. 25 residents are alive. Upkeep is about 1 a day.",
        "Your wealth: 10.5. Your skill: 1.11. Factories you know: factory 1: capacity 6.3.",
        "Your allies: none. Residents you see: resident_1 (middling), resident_2 (rich).",
        "Messages for you: - from resident_4 (to everyone): \"let us work together\"",
        "Answer with one JSON object. reflection plan memory messages primary secondary",
        '{"reflection": "I should work.", "messages": [{"to": "everyone", "text": "hi"}],'
        ' "primary": {"kind": "work", "factory": 1}, "secondary": {"kind": "none"}}',
        "help share trust attack gift merge explore upgrade idle work together peace fair",
        "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 . , ! ? ' - : ; ( ) [ ] { }",
    ]
    lines += [" ".join(words)] * 3
    lines += [f"resident_{i} factory {i % 7} amount {i}" for i in range(40)]
    return lines * 4 + _prompt_texts()


def _prompt_texts() -> list[str]:
    """The policy's own prompt texts (phase prompts, personas, questionnaire) and a briefing,
    so that the test tokenizer needs about as many tokens for them as a real one."""
    from civa_env import world
    from civa_env.policies.llm import personas, questionnaire
    from civa_env.policies.llm.prompts import PROMPT_DIR
    from civa_env.world.values import all_conditions

    texts = [p.read_text() for p in sorted(PROMPT_DIR.glob("*/*.txt"))]
    texts += [personas.persona(c, v) for c in all_conditions()
              for v in personas.VALUE_PROMPT_VERSIONS]
    texts.append(questionnaire.prompt_text())
    w = world.reset(world.Config(n_agents=8, seed=0), 0)
    texts += (w.observe(w.living, text=True).texts or [])[:4]
    return [line for t in texts for line in t.splitlines() if line.strip()]


def build_tokenizer(vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer (any text encodes) with ChatML-style special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_corpus(), trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>",
                                     eos_token="<|im_end|>",
                                     extra_special_tokens=["<|im_start|>", "<|endoftext|>"],
                                     padding_side="left")
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def build_tiny_model(path: str | Path, *, hidden_size: int = 64, num_hidden_layers: int = 2,
                     vocab_size: int = 1024, max_position_embeddings: int = 8192,
                     seed: int = 0, chat_template: bool = True, dtype: str = "float32",
                     **shape: Any) -> Path:
    """Save a random-weight Llama and its tokenizer to ``path``; returns the folder.

    ``shape`` overrides further ``LlamaConfig`` fields (``vocab_size`` of the model may exceed
    the tokenizer's, as in real checkpoints whose embedding tables are padded).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(vocab_size)
    if not chat_template:
        tok.chat_template = None
    heads = max(1, hidden_size // 16)
    fields = dict(vocab_size=len(tok), hidden_size=hidden_size,
                  intermediate_size=2 * hidden_size, num_hidden_layers=num_hidden_layers,
                  num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                  max_position_embeddings=max_position_embeddings, tie_word_embeddings=True)
    fields.update(shape)
    fields["vocab_size"] = max(fields["vocab_size"], len(tok))
    cfg = LlamaConfig(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=None, **fields)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(pad_token_id=tok.pad_token_id,
                                               eos_token_id=tok.eos_token_id)
    tok.save_pretrained(path)
    model.save_pretrained(path)
    if not chat_template:
        (path / "chat_template.jinja").unlink(missing_ok=True)
    return path


def build_random_shape(path: str | Path, shape: str, *, seed: int = 0,
                       max_position_embeddings: int = 32768) -> Path:
    """A random-weight Llama with the layer shapes of ``shape`` (a key of ``SHAPES``)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    fields = dict(SHAPES[shape])
    return build_tiny_model(path, seed=seed, max_position_embeddings=max_position_embeddings,
                            vocab_size=4096, dtype="bfloat16", **fields)


def build_tiny_gguf(path: str | Path, *, hidden_size: int = 64, num_hidden_layers: int = 2,
                    vocab_size: int = 1024, max_position_embeddings: int = 8192, seed: int = 0,
                    chat_template: bool = True, first_block_type: str = "F32") -> Path:
    """Write a random-weight Llama and the tiny tokenizer as one GGUF file; returns its path.

    The file is what llama.cpp's converter writes for such a model (architecture ``llama``, a
    byte-level BPE vocabulary with its merges, float32 tensors under GGUF names), small enough
    to load in a second: the GGUF loading path without a download. ``first_block_type``
    stores block 0's query weights as random bytes of another GGML type (``Q8_1``: one no
    loader de-quantises), to test the error for an unsupported quantisation. Needs the
    ``gguf`` package.
    """
    import json

    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(vocab_size)
    tokens = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    specials = set(SPECIALS)
    types = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    heads = max(1, hidden_size // 16)
    kv_heads = max(1, heads // 2)
    head_dim = hidden_size // heads

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("civa-tiny-llama")
    writer.add_context_length(max_position_embeddings)
    writer.add_embedding_length(hidden_size)
    writer.add_block_count(num_hidden_layers)
    writer.add_feed_forward_length(2 * hidden_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tok.eos_token_id)
    writer.add_pad_token_id(tok.pad_token_id)
    if chat_template:
        writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> Any:  # (out, in) float32, as torch stores a Linear
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    ones = np.ones(hidden_size, dtype=np.float32)
    writer.add_tensor("token_embd.weight", weight(len(tokens), hidden_size))
    writer.add_tensor("output_norm.weight", ones)
    for b in range(num_hidden_layers):
        block = {"attn_norm": ones, "ffn_norm": ones,
                 "attn_q": weight(hidden_size, hidden_size),
                 "attn_k": weight(kv_heads * head_dim, hidden_size),
                 "attn_v": weight(kv_heads * head_dim, hidden_size),
                 "attn_output": weight(hidden_size, hidden_size),
                 "ffn_gate": weight(2 * hidden_size, hidden_size),
                 "ffn_up": weight(2 * hidden_size, hidden_size),
                 "ffn_down": weight(hidden_size, 2 * hidden_size)}
        for name, value in block.items():
            if b == 0 and name == "attn_q" and first_block_type != "F32":
                qtype = gguf.GGMLQuantizationType[first_block_type]
                block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
                rows = rng.integers(0, 256, (value.shape[0], value.shape[1] // block_size *
                                             type_size), dtype=np.uint8)  # (out, bytes)
                writer.add_tensor(f"blk.{b}.{name}.weight", rows, raw_dtype=qtype)
            else:
                writer.add_tensor(f"blk.{b}.{name}.weight", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
