"""``civa report`` with a run folder it cannot read: the report covers the readable runs,
names the other (in its output and under "Skipped run folders" in report.md), and reads
everything before it writes anything, so report.md never disagrees with its figures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from civa_env.cli import main
from civa_env.experiments import report as report_module
from civa_env.experiments import thresholds
from civa_env.experiments.report import build_report
from civa_env.experiments.sweep import Sweep, run_id
from civa_env.world.config import Config

SMALL = Config(n_agents=5, max_days=3)
BROKEN = run_id("with:power", 1.0, 0)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep = tmp_path_factory.mktemp("report") / "sweep"
    Sweep(sweep, ["baseline", "with:power"], [1.0], 2, SMALL).run(progress=False)
    return sweep


@pytest.fixture
def sweep(tmp_path: Path, finished_sweep: Path) -> Path:
    copy = tmp_path / "sweep"
    shutil.copytree(finished_sweep, copy, ignore=shutil.ignore_patterns("*.html", ".lock"))
    return copy


def break_config(sweep: Path) -> Path:
    config = sweep / "runs" / BROKEN / "config.json"
    config.write_text('{"civa_version": "0", "env": {', encoding="utf-8")
    return config


def test_broken_run_folder_is_skipped_and_named(sweep: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    config = break_config(sweep)
    assert main(["report", str(sweep)]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"civa: warning: skipped run folder {BROKEN}: {config}: not valid JSON ("), err
    assert "1 run folder skipped" in captured.out
    text = (sweep / "report" / "report.md").read_text(encoding="utf-8")
    section = text.split("## Skipped run folders", 1)[1]
    assert f"| {BROKEN} | {config}: not valid JSON (" in section
    assert "| with:power | 1 | 2 |" in text  # its row of results.csv still counts
    runs = (sweep / "report" / "runs.md").read_text(encoding="utf-8")
    others = (run_id("baseline", 0.0, 0), run_id("baseline", 0.0, 1),
              run_id("with:power", 1.0, 1))
    for rid in others:  # every readable run got its page
        assert (sweep / "runs" / rid / "view.html").is_file()
        assert f"../runs/{rid}/view.html" in runs
    assert not (sweep / "runs" / BROKEN / "view.html").exists()
    assert "(no page: skipped, see report.md)" in runs
    for name in ("nAUP_vs_prevalence.png", "population_curves.png"):
        assert (sweep / "report" / name).stat().st_size > 0


def test_report_reads_everything_before_writing(sweep: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    break_config(sweep)
    (sweep / "runs" / run_id("baseline", 0.0, 1) / "questionnaire.jsonl").write_bytes(
        b'{"broken\n{"day": 0}\n')  # a broken line before the last: unreadable
    events: list[str] = []

    def spy(name: str, inner: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            events.append(name)
            return inner(*args, **kwargs)
        return wrapped

    viewer = report_module._viewer()

    class Viewer:
        build_page = staticmethod(spy("read", viewer.build_page))

    monkeypatch.setattr(report_module, "_viewer", lambda: Viewer)
    monkeypatch.setattr(report_module, "read_questionnaire",
                        spy("read", report_module.read_questionnaire))
    monkeypatch.setattr(report_module, "_figures", spy("write", report_module._figures))
    monkeypatch.setattr(thresholds, "report_lines", spy("write", thresholds.report_lines))
    skipped: dict[str, str] = {}
    path = build_report(sweep, on_skip=skipped.__setitem__)
    assert "read" in events and "write" in events
    assert "read" not in events[events.index("write"):]  # no read after the first write
    assert set(skipped) == {BROKEN, run_id("baseline", 0.0, 1)}
    assert "questionnaire.jsonl: line 1" in skipped[run_id("baseline", 0.0, 1)]
    text = path.read_text(encoding="utf-8")
    assert "2 run folders under" in text and all(rid in text for rid in skipped)


def test_without_pages_only_the_folders_read_can_be_skipped(sweep: Path) -> None:
    break_config(sweep)  # no page asked for: its config.json is never read
    skipped: dict[str, str] = {}
    text = build_report(sweep, pages=False, on_skip=skipped.__setitem__).read_text()
    assert skipped == {} and "Skipped run folders" not in text
    questionnaire = sweep / "runs" / BROKEN / "questionnaire.jsonl"
    questionnaire.write_bytes(b"\xff\xfe not text\n")
    text = build_report(sweep, pages=False, on_skip=skipped.__setitem__).read_text()
    assert list(skipped) == [BROKEN] and "utf-8" in skipped[BROKEN]
    assert "## Skipped run folders" in text
