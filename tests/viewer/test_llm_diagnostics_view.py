"""LLM diagnostics from a policy to metrics.json, the ``civa run`` summary and the viewer.

A stand-in policy with a ``diagnostics`` attribute plays the LLM policy: it always works at
the first factory listed and sends the same message, so every degeneracy warning fires.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_viewer import Page, browser  # noqa: F401 (the fixture)

from civa_env.cli import diagnostic_warnings, format_summary
from civa_env.experiments.runner import run_communities
from civa_env.policies.base import Policy
from civa_env.policies.llm.diagnostics import Diagnostics, random_answer, warnings
from civa_env.viewer import build_page, page_data
from civa_env.world.config import Config


class StandIn(Policy):
    """Works at the first listed factory (or explores), attacks the first listed resident
    and greets everyone, every day;
    ``first=False``: a random valid resident with varied messages."""

    name = "stand-in"

    def __init__(self, first: bool = True) -> None:
        self.first = first
        self.diagnostics = Diagnostics(seed=1)
        self.rng = np.random.default_rng(0)

    def act(self, batch: Any) -> dict:
        out = {}
        for r, key in enumerate(batch.keys):
            legal = batch.legal(r)
            if self.first:
                fields = ({"primary": "work", "factory": legal["factories"][0]}
                          if legal["factories"] else {"primary": "explore"})
                fields.update({"secondary": "attack", "target": legal["targets"][0]}
                              if legal["targets"] else {"secondary": "none"})
                fields["messages"] = [{"to": "everyone", "text": "Hello everyone"}]
            else:
                fields = random_answer(legal, self.rng)
                fields["messages"] = [{"to": "everyone",
                                       "text": f"Offer {self.rng.integers(10**6)}"}]
            self.diagnostics.add("system prompt\nuser prompt", fields, legal)
            out[key] = {k: v for k, v in fields.items()}
        return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("diagnostics") / "run"
    cfg = Config(n_agents=12, max_days=10)
    policies = {"first": StandIn(), "varied": StandIn(first=False)}
    result = run_communities([cfg], [2], "first=0.5,varied=0.25,random=0.25", [path],
                             policies=policies, progress=False, plots=False)[0]
    return path, result


def test_metrics_json_has_the_diagnostics_of_each_llm_like_policy(run_dir):
    path, result = run_dir
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    found = metrics["llm"]["diagnostics"]
    assert set(found) == {"first", "varied"}  # keyed by spec; random has none
    first = found["first"]
    assert first["decisions"] >= 10 and first["primary_shares"]["work"] > 0.9
    assert first["first_option_rate"] == 1.0 and first["duplicate_message_rate"] > 0.9
    assert first["reference"]["echo_rate"] is None
    assert found == result.summary["llm"]["diagnostics"]
    assert warnings(found["varied"]) == []


def test_run_summary_prints_the_warnings(run_dir):
    _, result = run_dir
    text = format_summary(result, Config(n_agents=12, max_days=10))
    lines = [line for line in text.splitlines() if line.startswith("warning:")]
    assert lines == diagnostic_warnings(result.summary)
    assert len(lines) == 3 and all(line.startswith("warning: first: ") for line in lines)
    assert diagnostic_warnings({"nAUP": 1.0}) == []


def test_page_data_carries_the_diagnostics(run_dir):
    path, _ = run_dir
    data = page_data(path)
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    diag = data["llmDiagnostics"]
    assert set(diag) == {"first", "varied"}
    assert diag["first"]["figures"] == metrics["llm"]["diagnostics"]["first"]
    assert len(diag["first"]["warnings"]) == 3 and diag["varied"]["warnings"] == []
    assert "diagnostics" not in data["summary"].get("llm", {})


def test_page_shows_the_diagnostics_table(browser, run_dir, tmp_path):  # noqa: F811
    path, _ = run_dir
    page = Page(browser, build_page(path, tmp_path / "view.html"))
    heads = page.js("[...document.querySelectorAll('#table-llm-diagnostics th')]"
                    ".map((th) => th.textContent)")
    assert heads == ["LLM diagnostics", "first", "first: random valid", "varied",
                     "varied: random valid"]
    rows = page.js("Object.fromEntries([...document.querySelectorAll("
                   "'#table-llm-diagnostics tbody tr')].map((tr) => [tr.cells[0].textContent,"
                   " [...tr.cells].slice(1).map((c) => c.textContent)]))")
    assert rows["first-option rate"][0] == "1" and rows["echo rate"][1] == "-"
    assert page.js("document.querySelectorAll('#llm-warnings li').length") == 3
    page.close()
