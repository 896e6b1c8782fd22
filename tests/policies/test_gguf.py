"""GGUF models in the transformers backend: which path loads what, and the errors for bad ones.

The files are made in-test: garbage bytes named ``.gguf``, and a 2-layer random-weight Llama
written as GGUF (``tiny.build_tiny_gguf``), so nothing is downloaded. The packaged real model
is in ``test_real_model.py``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llguidance")

from civa_env.policies.llm.models.hf import HFModel, ModelLoadError  # noqa: E402
from civa_env.policies.llm.models.tiny import build_tiny_model  # noqa: E402

SMALL = dict(reflection_chars=16, memory_chars=16, message_chars=16, plan_chars=16)
needs_gguf = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("gguf", "accelerate")),
    reason="loading a GGUF needs the gguf and accelerate packages (pip install -e .[llm])")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf")
    from civa_env.policies.llm.models.tiny import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(4096))
    return path


# ---- bad paths: no model needed ----------------------------------------------------------------
def test_garbage_gguf_is_named(tmp_path):
    file = garbage(tmp_path / "broken.gguf")
    for model in (file, tmp_path):  # the file, and the folder holding only it
        with pytest.raises(ModelLoadError, match=r"broken\.gguf is not a GGUF file"):
            HFModel(model)


def test_folder_with_several_ggufs_asks_for_one(tmp_path):
    garbage(tmp_path / "a-Q4_0.gguf")
    garbage(tmp_path / "b-Q8_0.gguf")
    with pytest.raises(ModelLoadError, match=r"holds 2 GGUF files \(a-Q4_0\.gguf, b-Q8_0\.gguf\)"
                                             r".*--model .*a-Q4_0\.gguf.*gguf_file="):
        HFModel(tmp_path)
    # Naming one of them goes on to that file (garbage here, so its own error).
    with pytest.raises(ModelLoadError, match=r"b-Q8_0\.gguf is not a GGUF file"):
        HFModel(tmp_path, gguf_file="b-Q8_0.gguf")
    with pytest.raises(ModelLoadError, match=r"c\.gguf does not exist"):
        HFModel(tmp_path, gguf_file="c.gguf")


def test_missing_and_non_gguf_files(tmp_path):
    with pytest.raises(ModelLoadError, match=r"GGUF file .*nowhere\.gguf does not exist"):
        HFModel(tmp_path / "nowhere.gguf")
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\0" * 16)
    with pytest.raises(ModelLoadError, match=r"is a file but not a \.gguf"):
        HFModel(other)


def test_bad_gguf_is_one_cli_line(tmp_path, capsys):
    from civa_env.cli import main

    for model, says in ((garbage(tmp_path / "one" / "m.gguf"), "is not a GGUF file"),
                        (tmp_path / "none.gguf", "does not exist")):
        code = main(["run", "--policy", "llm", "--model", str(model), "--agents", "3",
                     "--days", "1", "--out", str(tmp_path / "run"), "--no-progress"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1, lines
        assert lines[0].startswith("civa: error: ") and says in lines[0]
        assert not (tmp_path / "run").exists()


@needs_gguf
def test_unsupported_architecture_is_named(tmp_path):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(tmp_path / "odd.gguf"), "oddformer")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match=r"odd\.gguf \(.*architecture oddformer.*\); "
                                             r".*\(it loads .*llama.*qwen2"):
        HFModel(tmp_path / "odd.gguf")


@needs_gguf
def test_unsupported_quantisation_is_named(tmp_path):
    from civa_env.policies.llm.models.tiny import build_tiny_gguf

    file = build_tiny_gguf(tmp_path / "q81.gguf", first_block_type="Q8_1")
    with pytest.raises(ModelLoadError, match=r"q81\.gguf \(.*Q8_1.*\); .*another quantisation"):
        HFModel(file)


# ---- GGUF files that load -----------------------------------------------------------------------
@needs_gguf
def test_tiny_gguf_runs_a_day_constrained(tiny_gguf, tmp_path):
    """The file, and the folder holding it, load with the file's tokenizer and template;
    ``civa run --model file.gguf`` runs a constrained day."""
    import json

    from civa_env.cli import main

    model = HFModel(tiny_gguf)
    assert model.gguf_file == "tiny.gguf" and model.context == 8192
    assert "<|im_start|>assistant" in model.render([{"role": "user", "content": "hi"}])
    assert HFModel(tiny_gguf.parent).gguf_file == "tiny.gguf"
    out = tmp_path / "run"
    argv = ["run", "--policy", "llm", "--model", str(tiny_gguf), "--agents", "3", "--days", "1",
            "--out", str(out), "--no-plots", "--no-progress", "--llm-option", "cache=off",
            "--llm-option", "questionnaire=false"]
    argv += [x for k, v in SMALL.items() for x in ("--llm-option", f"{k}={v}")]
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["valid"] * 3
    config = json.loads((out / "config.json").read_text())["policies"]["llm"]
    assert config["model_identity"].startswith(f"hf:{tiny_gguf}:")


@needs_gguf
def test_gguf_without_chat_template(tmp_path):
    from civa_env.policies.llm.models.tiny import CHAT_TEMPLATE, build_tiny_gguf

    file = build_tiny_gguf(tmp_path / "base.gguf", chat_template=False)
    with pytest.raises(ModelLoadError, match=r"GGUF file .*base\.gguf has no chat template"
                                             r".*chat_template="):
        HFModel(file)
    assert HFModel(file, chat_template=CHAT_TEMPLATE).tokenizer.chat_template == CHAT_TEMPLATE


@needs_gguf
def test_transformers_folder_with_a_stray_gguf_loads_the_folder(tmp_path, tiny_gguf):
    """Safetensors win: a .gguf beside a complete transformers folder is not what loads."""
    folder = build_tiny_model(tmp_path / "model")
    shutil.copy(tiny_gguf, folder / "extra.gguf")
    assert HFModel(folder).gguf_file is None
