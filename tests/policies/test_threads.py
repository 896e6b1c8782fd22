"""CPU threads for torch: the default that does not oversubscribe, the llm option ``threads``
and ``civa run --threads``."""

from __future__ import annotations

import os

import pytest

from civa_env.cli import _threads, build_parser
from civa_env.policies.threads import available_cpus, default_threads, torch_threads


def test_the_default_is_one_thread_under_xdist_else_torchs_capped(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert default_threads(8) == 1
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert default_threads(1) == 1
    assert default_threads(10_000) == available_cpus() <= (os.cpu_count() or 1)


def test_torch_threads_sets_torch():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        assert torch_threads(1) == 1 == torch.get_num_threads()
        with pytest.raises(ValueError, match="threads must be >= 1"):
            torch_threads(0)
    finally:
        torch.set_num_threads(before)


def test_the_hf_backend_takes_a_threads_option(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from civa_env.policies.llm.models import load_model
    from civa_env.policies.llm.models.tiny import build_tiny_model

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        model = load_model(str(build_tiny_model(tmp_path / "tiny")), "hf", threads=1)
        assert model.threads == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_civa_run_threads_goes_to_the_transformers_backend_only():
    args = build_parser().parse_args(["run", "--policy", "llm", "--threads", "2"])
    assert args.threads == 2
    hf = {"llm": {"model": "m"}}
    _threads(2, {"llm": 1.0}, hf)
    assert hf["llm"]["threads"] == 2
    server = {"llm": {"model": "m", "backend": "openai"}}
    _threads(2, {"llm": 1.0}, server)
    assert "threads" not in server["llm"]
    given = {"llm": {"model": "m", "threads": 1}}
    _threads(2, {"llm": 1.0}, given)
    assert given["llm"]["threads"] == 1  # an explicit llm option wins
    _threads(None, {"scripted": 1.0}, {})
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        _threads(0, {"llm": 1.0}, hf)
