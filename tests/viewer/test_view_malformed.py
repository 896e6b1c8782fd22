"""``civa view`` on malformed run folders: each gives a page of what can be read or a
one-line error naming the file (and the line), quickly, and never leaves a temporary file.

Cases: a message with a lone surrogate (accepted by the world's step, written by
``json.dumps`` as ``"\\ud800"``), an ``--out`` that is an existing folder, a corrupt resident
or factory index in ``events.jsonl``, a corrupt census line, a number too large for its
column, a truncated ``events.jsonl`` (an interrupted run) and a truncated ``config.json``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from test_viewer import Page, browser  # noqa: F401 (the fixture)

from civa_env.cli import main
from civa_env.experiments.runner import run_communities
from civa_env.policies.base import Policy
from civa_env.world.config import Config

LONE = "hi \ud800 there"  # a lone surrogate: no UTF-8 encoding exists for it


class Surrogates(Policy):
    """Works (or explores) and sends everyone a message with a lone surrogate."""

    name = "surrogates"

    def act(self, batch: Any) -> dict:
        out = {}
        for r, key in enumerate(batch.keys):
            legal = batch.legal(r)
            fields = ({"primary": "work", "factory": legal["factories"][0]}
                      if legal["factories"] else {"primary": "explore"})
            out[key] = {**fields, "secondary": "none",
                        "messages": [{"to": "everyone", "text": LONE}]}
        return out


@pytest.fixture(scope="module")
def surrogate_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("malformed") / "run"
    run_communities([Config(n_agents=6, max_days=4)], [1], "surrogates=0.5,scripted=0.5",
                    [path], policies={"surrogates": Surrogates()}, progress=False,
                    plots=False)
    assert "\\ud800" in (path / "events.jsonl").read_text(encoding="utf-8")
    return path


@pytest.fixture
def run(tmp_path: Path, surrogate_run: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(surrogate_run, copy, ignore=shutil.ignore_patterns("*.html"))
    return copy


def temporary_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith(".tmp"))


def view(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, list[str]]:
    """``civa view ARGV`` in-process: exit status, stdout, stderr lines."""
    start = time.monotonic()
    code = main(["view", *argv])
    assert time.monotonic() - start < 30  # no run-away allocation on a corrupt index
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def one_error(code: int, err: list[str]) -> str:
    assert code == 1 and len(err) == 1 and err[0].startswith("civa: error: "), err
    assert "internal error" not in err[0], err
    return err[0]


def page_payload(html: Path) -> dict[str, Any]:
    text = html.read_text(encoding="utf-8")  # strict UTF-8: the page encodes
    blob = re.search(r'<script[^>]*id="civa-data"[^>]*>(.*?)</script>', text, re.S)
    assert blob is not None
    return json.loads(blob.group(1))


def edit_line(path: Path, match: str, edit: Any) -> int:
    """Apply ``edit`` to the first JSON line of ``path`` containing ``match``; its number."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    k = next(k for k, line in enumerate(lines) if match in line)
    record = json.loads(lines[k])
    edit(record)
    lines[k] = json.dumps(record) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    return k + 1


# ---- a page of what can be read -----------------------------------------------------------
def test_lone_surrogate_message_gives_a_page(run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    code, out, err = view(capsys, str(run))
    assert code == 0 and err == [] and "view.html" in out
    data = page_payload(run / "view.html")
    assert LONE in data["strings"]  # kept as it is, escaped in the page's JSON
    assert temporary_files(tmp_path) == []


def test_lone_surrogate_page_opens_in_the_browser(browser: Any, run: Path,  # noqa: F811
                                                  capsys: pytest.CaptureFixture) -> None:
    assert view(capsys, str(run))[0] == 0
    page = Page(browser, run / "view.html")
    assert page.js("window.civaViewer.ready") is True
    page.close()


def test_truncated_event_log_gives_a_page_of_complete_days(run: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture
                                                           ) -> None:
    events = run / "events.jsonl"
    events.write_bytes(events.read_bytes()[:-25])  # a run killed mid-line
    code, out, err = view(capsys, str(run))
    assert code == 0 and err == []
    data = page_payload(run / "view.html")
    assert data["partial"] and "events.jsonl" in data["partial"]
    assert 0 < data["nDays"] < 4
    assert temporary_files(tmp_path) == []


# ---- one-line errors --------------------------------------------------------------------------
def test_out_that_is_a_folder(run: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    line = one_error(*view(capsys, str(run), "--out", str(folder))[::2])
    assert line == (f"civa: error: --out {folder} is a folder; give the HTML file to write "
                    f"(e.g. {folder / 'view.html'})")
    assert list(folder.iterdir()) == [] and temporary_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages", "run"]


@pytest.mark.parametrize("key, value, words", [
    ("actor", "resident_99999999", "actor resident_99999999 is not a resident of this run "
     "(config.json: max_agents 24"),
    ("target", "resident_24", "target resident_24 is not a resident of this run"),
    ("factory", 1000, "factory 1000 is out of range (config.json: n_factories"),
])
def test_corrupt_index_names_file_and_line(run: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture, key: str,
                                           value: Any, words: str) -> None:
    events = run / "events.jsonl"
    lineno = edit_line(events, '"kind": "message"', lambda r: r.update({key: value}))
    line = one_error(*view(capsys, str(run))[::2])
    assert line.startswith(f"civa: error: {events}: line {lineno}: {words}"), line
    assert not (run / "view.html").exists() and temporary_files(tmp_path) == []


@pytest.mark.parametrize("edit, words", [
    (lambda r: r.pop("wealth_median_start"), "census line has no number 'wealth_median_start'"),
    (lambda r: r.update(actions=None), "census line's 'actions' is not an object of counts"),
])
def test_corrupt_census_line_names_file_and_line(run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture, edit: Any,
                                                 words: str) -> None:
    events = run / "events.jsonl"
    lineno = edit_line(events, '"kind": "census"', edit)
    line = one_error(*view(capsys, str(run))[::2])
    assert line == f"civa: error: {events}: line {lineno}: {words}"
    assert temporary_files(tmp_path) == []


def test_number_too_large_for_its_column(run: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    events = run / "events.jsonl"
    edit_line(events, '"kind": "work"', lambda r: r.update(flag=2**40))
    line = one_error(*view(capsys, str(run))[::2])
    assert line.startswith(f"civa: error: {events}: a value is out of range")
    assert temporary_files(tmp_path) == []


def test_truncated_config_is_not_reported_missing(run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    config = run / "config.json"
    config.write_bytes(config.read_bytes()[:40])
    line = one_error(*view(capsys, str(run))[::2])
    assert line.startswith(f"civa: error: {config}: not valid JSON (")
    assert "not a CIVA run folder" not in line
    assert not (run / "view.html").exists() and temporary_files(tmp_path) == []
    config.unlink()
    line = one_error(*view(capsys, str(run))[::2])
    assert line == f"civa: error: {run} is not a CIVA run folder (no config.json from civa run)"


def test_failed_write_leaves_no_temporary_file_or_folder(run: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture
                                                         ) -> None:
    import civa_env.viewer as viewer

    def disk_full(payload: Any) -> str:
        return "\udfff"  # a page that cannot be encoded: the write fails midway

    monkeypatch.setattr(viewer, "render", disk_full)
    out = tmp_path / "new" / "deeper" / "page.html"
    code, _, err = view(capsys, str(run), "--out", str(out))
    assert code == 1 and len(err) == 1
    assert temporary_files(tmp_path) == [] and not (tmp_path / "new").exists()
