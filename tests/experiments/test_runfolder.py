"""One reader of run folders (``civa_env.experiments.runfolder``) behind the viewer, the
report, the sweep and the LLM annotator: one ``RunFolderError`` naming the file, one test of
a finished run, prevalence checked by ``Config`` alone, and flag names only in the CLI."""

from __future__ import annotations

import ast
import json
import pickle
import re
import shutil
from pathlib import Path

import pytest

from civa_env.cli import FLAGS, _one_line, main
from civa_env.experiments import runfolder
from civa_env.experiments.report import build_report
from civa_env.experiments.runfolder import (
    RunFolderError,
    SettingError,
    check_run_dir,
    complete_metrics,
    is_complete_run,
    is_run_dir,
    prepare_run_dir,
    read_config,
    read_env_config,
    read_events,
    read_metrics,
    read_residents,
)
from civa_env.experiments.runner import run_community
from civa_env.experiments.sweep import Sweep, make_grid, run_id
from civa_env.policies.llm.annotator import LABELS, LLMAnnotator
from civa_env.viewer import build_page, page_data
from civa_env.world.config import Config, check_prevalence

PACKAGE = Path(__file__).resolve().parents[2] / "civa_env"
SMALL = Config(n_agents=6, max_days=4)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runfolder") / "run"
    run_community(SMALL, "scripted=0.5,random=0.5", seed=1, run_dir=run, progress=False,
                  plots=False)
    return run


@pytest.fixture
def run_copy(tmp_path: Path, finished_run: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("*.html"))
    return run


class _Identity:
    identity = {"name": "stub"}


def _annotator() -> LLMAnnotator:
    """An annotator whose model answers 'nothing' to every message (no model loaded)."""
    annotator = object.__new__(LLMAnnotator)
    annotator.window, annotator.failures, annotator.model = 2, 0, _Identity()
    annotator.label = lambda items: [dict.fromkeys(LABELS, False) for _ in items]
    return annotator


# ---- reading ---------------------------------------------------------------------------------
def test_readers_give_back_what_the_runner_wrote(finished_run: Path) -> None:
    config = read_config(finished_run)
    assert config == json.loads((finished_run / "config.json").read_text())
    assert read_env_config(finished_run) == Config.from_dict(config["env"])
    assert read_residents(finished_run) == json.loads(
        (finished_run / "residents.json").read_text())
    metrics = read_metrics(finished_run)
    assert metrics == json.loads((finished_run / "metrics.json").read_text())
    assert complete_metrics(finished_run) == metrics
    log = read_events(finished_run)
    assert log.n_days == SMALL.max_days and log.partial_reason is None
    assert is_run_dir(finished_run) and is_complete_run(finished_run)


def test_config_of_bare_config_fields_is_unwrapped(run_copy: Path) -> None:
    # A config.json holding Config fields directly (Config.to_json) reads like a run's.
    cfg = read_env_config(run_copy)
    (run_copy / "config.json").write_text(cfg.to_json())
    assert read_env_config(run_copy) == cfg


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "config must be a JSON object, got list"),
    ('{"civa_version": "0", "env": {"n_agents": "six"}}', "n_agents must be an int"),
    ('{"civa_version": "0", "env": {"nonesuch": 1}}', "unknown config field 'nonesuch'"),
])
def test_malformed_config_is_one_error_naming_the_file(run_copy: Path, text: str,
                                                       words: str) -> None:
    (run_copy / "config.json").write_text(text)
    expected = f"{run_copy / 'config.json'}: "
    for read in (lambda: read_env_config(run_copy), lambda: page_data(run_copy),
                 lambda: build_page(run_copy)):
        with pytest.raises(RunFolderError) as caught:
            read()
        assert str(caught.value).startswith(expected) and words in str(caught.value)
    assert not (run_copy / "view.html").exists()


def test_report_passes_on_the_run_folder_error(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    Sweep(sweep, ["with:power"], [1.0], 1, SMALL).run(progress=False)
    rid = run_id("with:power", 1.0, 0)
    run = sweep / "runs" / rid
    (run / "config.json").write_text('{"civa_version": "0", "env": {"n_agents": "six"}}')
    skipped: dict[str, str] = {}
    report = build_report(sweep, on_skip=skipped.__setitem__)  # skipped, named, not fatal
    assert list(skipped) == [rid]
    assert re.match(re.escape(f"{run / 'config.json'}: ") + ".*n_agents", skipped[rid])
    assert f"| {rid} | {run / 'config.json'}: " in report.read_text()
    assert build_report(sweep, pages=False).is_file()  # the table alone needs no run folder


def test_missing_or_broken_event_log_is_one_error_for_viewer_and_annotator(
        run_copy: Path) -> None:
    events = run_copy / "events.jsonl"
    original = events.read_bytes()
    events.unlink()
    for read in (lambda: page_data(run_copy), lambda: _annotator().annotate_run(run_copy),
                 lambda: read_events(run_copy)):
        with pytest.raises(RunFolderError, match=re.escape(f"{events}: missing")):
            read()
    events.write_bytes(b"\xff\xfe" + original)
    for read in (lambda: page_data(run_copy), lambda: _annotator().annotate_run(run_copy)):
        with pytest.raises(RunFolderError, match=re.escape(f"{events}: not a text file")):
            read()
    with pytest.raises(RunFolderError, match="not a folder"):
        _annotator().annotate_run(run_copy / "nowhere")


def test_viewer_and_annotator_read_the_same_complete_days(run_copy: Path) -> None:
    events = run_copy / "events.jsonl"
    lines = events.read_text().splitlines(keepends=True)
    census = [k for k, line in enumerate(lines) if '"kind": "census"' in line]
    cut = census[1] + 2  # two days, a few events of the third, then half a line
    events.write_text("".join(lines[:cut]) + lines[cut][:10])
    with pytest.raises(RunFolderError, match=re.escape(f"{events}: line {cut + 1}")):
        read_events(run_copy)
    log = read_events(run_copy, allow_partial=True)
    assert log.n_days == 2 and f"line {cut + 1}" in log.partial_reason
    assert page_data(run_copy)["nDays"] == 2
    messages = sum(e.kind.label == "message" for e in log.events())
    assert _annotator().annotate_run(run_copy)["messages"] == messages
    assert json.loads((run_copy / "annotations.json").read_text())["messages"] == messages


def test_residents_json_is_optional(run_copy: Path) -> None:
    (run_copy / "residents.json").write_text("{broken")
    assert read_residents(run_copy) == {}
    (run_copy / "residents.json").unlink()
    assert read_residents(run_copy) == {}
    assert page_data(run_copy)["residents"]["n"] >= SMALL.n_agents


# ---- a finished run ----------------------------------------------------------------------------
def test_finished_run_is_told_by_metrics_json_alone(run_copy: Path) -> None:
    metrics = run_copy / "metrics.json"
    data = json.loads(metrics.read_text())
    assert is_complete_run(run_copy)
    metrics.write_text(json.dumps({**data, "status": "running"}))
    assert not is_complete_run(run_copy) and complete_metrics(run_copy) is None
    metrics.write_text("{half")
    assert not is_complete_run(run_copy)
    with pytest.raises(RunFolderError, match=re.escape(f"{metrics}: not valid JSON")):
        read_metrics(run_copy)
    metrics.unlink()
    assert read_metrics(run_copy) is None and not is_complete_run(run_copy)
    assert not is_complete_run(run_copy / "nowhere")
    # The viewer then summarises the log itself.
    assert page_data(run_copy)["summarySource"].startswith("computed from")


def test_sweep_reruns_a_run_whose_metrics_are_broken(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    Sweep(sweep, ["with:power"], [1.0], 1, SMALL).run(progress=False)
    run = sweep / "runs" / run_id("with:power", 1.0, 0)
    before = json.loads((run / "metrics.json").read_text())
    (sweep / "results.csv").unlink()
    (run / "metrics.json").write_text("{half")
    report = Sweep(sweep, ["with:power"], [1.0], 1, SMALL).run(progress=False)
    assert (report.recovered, report.ran) == (0, 1)
    assert json.loads((run / "metrics.json").read_text())["nAUP"] == before["nAUP"]


# ---- preparing a run folder, settings named by the caller ---------------------------------------
def test_run_folder_errors_name_settings_for_api_and_cli(tmp_path: Path,
                                                         finished_run: Path) -> None:
    odd = tmp_path / "a {path} with braces"
    shutil.copytree(finished_run, odd)
    with pytest.raises(RunFolderError) as caught:
        prepare_run_dir(odd)
    err = caught.value
    assert str(err) == (f"output folder {odd} already holds a run; pass overwrite=True to "
                        "replace it or choose another output folder")
    assert err.worded(FLAGS) == _one_line(err) == (
        f"output folder {odd} already holds a run; pass --overwrite to replace it or "
        "choose another --out")
    # Pickled as a worker process sends it back, it keeps its settings.
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is RunFolderError and again.worded(FLAGS) == err.worded(FLAGS)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder; choose another output"):
        check_run_dir(tmp_path / "file")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="holds something else") as caught:
        check_run_dir(other, overwrite=True)
    assert _one_line(caught.value).endswith("choose an empty or new --out")
    check_run_dir(odd, overwrite=True)  # checks only
    assert is_complete_run(odd)
    assert isinstance(SettingError("plain {text}"), ValueError)
    assert str(SettingError("plain {text}")) == "plain {text}"


def test_overwrite_removes_only_civa_files(run_copy: Path) -> None:
    own = ["view.html", "population.png", "population.pdf", "transcript.jsonl",
           ".config.json.a1b2c3d4.tmp", ".view.html.x_y9z8w7.tmp"]
    for name in own:
        (run_copy / name).write_text("x")
    assert [n for n in own if not runfolder.is_own_file(run_copy / n)] == []
    (run_copy / "notes.txt").write_text("mine")
    (run_copy / "data").mkdir()
    (run_copy / "config.json.bak").write_text("{}")
    assert runfolder.foreign_files(run_copy) == ["config.json.bak", "data", "notes.txt"]
    before = sorted(p.name for p in run_copy.iterdir())
    for attempt in (lambda: check_run_dir(run_copy, overwrite=True),
                    lambda: prepare_run_dir(run_copy, overwrite=True)):
        with pytest.raises(RunFolderError) as caught:
            attempt()
        assert _one_line(caught.value) == (
            f"output folder {run_copy} holds an earlier run and files that are not CIVA's "
            "(config.json.bak, data, notes.txt); --overwrite replaces only a run's own "
            "files: move those away or choose another --out")
    assert sorted(p.name for p in run_copy.iterdir()) == before  # nothing removed
    (run_copy / "notes.txt").unlink()
    (run_copy / "config.json.bak").unlink()
    (run_copy / "data").rmdir()
    assert prepare_run_dir(run_copy, overwrite=True) == run_copy
    assert list(run_copy.iterdir()) == []


def test_folder_of_leftovers_is_civa_s_own(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / ".config.json.q1w2e3r4.tmp").write_text("{")  # killed before config.json
    with pytest.raises(RunFolderError, match="pass overwrite=True"):
        check_run_dir(killed)
    prepare_run_dir(killed, overwrite=True)
    assert list(killed.iterdir()) == []


def test_run_figures_are_civa_s_own_files(tmp_path: Path, finished_run: Path) -> None:
    from civa_env.experiments import plots

    written = plots.plot_run(tmp_path, read_metrics(finished_run))
    assert written and all(runfolder.is_own_file(p) for p in written)
    for ext in getattr(plots, "FORMATS", ()):  # every format a figure may be written in
        assert ext in runfolder.PLOT_FORMATS


def test_cli_names_flags_for_lower_layers(tmp_path: Path, capsys: pytest.CaptureFixture,
                                          finished_run: Path) -> None:
    with pytest.raises(SettingError) as caught:
        make_grid(["with:power"], [1.0], 0)
    assert str(caught.value) == "seeds must be >= 1, got 0"
    assert _one_line(caught.value) == "--seeds must be >= 1, got 0"
    assert main(["sweep", "--seeds", "0", "--out", str(tmp_path / "s")]) == 1
    assert capsys.readouterr().err.strip() == "civa: error: --seeds must be >= 1, got 0"
    with pytest.raises(SettingError, match="^workers must be >= 1, got 0$"):
        Sweep(tmp_path / "s", ["with:power"], [1.0], 1, SMALL).run(workers=0, progress=False)
    # An earlier run among the env_k folders of --envs: the run folder's own check.
    out = tmp_path / "multi"
    shutil.copytree(finished_run, out / "env_1")
    assert main(["run", "--envs", "2", "--agents", "4", "--days", "2", "--no-progress",
                 "--no-plots", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"civa: error: output folder {out / 'env_1'} already holds a run; pass --overwrite "
        "to replace it or choose another --out")
    assert not (out / "env_0").exists()
    # A report of a folder without results.csv.
    assert main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"civa: error: {tmp_path} has no results.csv: is it a sweep folder? (the --out of a "
        "sweep holds one)")


def test_view_of_a_run_folder_with_a_broken_config(run_copy: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    (run_copy / "config.json").write_text('{"civa_version": "0", "env": {"max_days": 0}}')
    assert main(["view", str(run_copy)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"civa: error: {run_copy / 'config.json'}: invalid config: max_days must "
                   "be an int >= 1")


# ---- prevalence --------------------------------------------------------------------------------
def test_prevalence_is_checked_by_config_alone(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError) as from_config:
        Config(prevalence=1.5)
    for check in (lambda: check_prevalence(1.5), lambda: make_grid(["with:power"], [1.5], 1)):
        with pytest.raises(ValueError) as caught:
            check()
        assert str(caught.value) == str(from_config.value)
    assert check_prevalence(0.25) == 0.25
    for argv in (["run", "--prevalence", "1.5"], ["sweep", "--prevalence", "0,1.5"]):
        assert main([*argv, "--out", str(tmp_path / "x"), "--no-progress"]) == 1
        assert capsys.readouterr().err.strip() == f"civa: error: {from_config.value}"
    assert not (tmp_path / "x").exists()


# ---- one definition of each -------------------------------------------------------------------
def _strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs]


def test_flag_names_only_in_the_cli() -> None:
    layers = [*sorted((PACKAGE / "experiments").glob("*.py")),
              *sorted((PACKAGE / "viewer").glob("*.py"))]
    found = [f"{path.relative_to(PACKAGE)}:{line}: {text!r}" for path in layers
             for line, text in _strings(path) if re.search(r"(^|\W)--[a-z]", text)]
    assert not found, found


def test_one_run_folder_error_and_one_reader() -> None:
    classes = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes += [str(path.relative_to(PACKAGE)) for node in ast.walk(tree)
                    if isinstance(node, ast.ClassDef) and node.name == "RunFolderError"]
    assert classes == ["experiments/runfolder.py"]
    import civa_env.viewer as viewer
    from civa_env.viewer import data

    assert not hasattr(data, "RunFolderError") and "RunFolderError" not in viewer.__all__
    # The viewer, the report, the sweep and the annotator make no path of a run-folder file
    # themselves (``run_dir / "config.json"``): they read through runfolder.
    readers = [PACKAGE / "experiments" / "report.py", PACKAGE / "experiments" / "sweep.py",
               PACKAGE / "policies" / "llm" / "annotator.py",
               *sorted((PACKAGE / "viewer").glob("*.py"))]
    for path in readers:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        joins = [node.lineno for node in ast.walk(tree)
                 if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                 and isinstance(node.right, ast.Constant)
                 and node.right.value in runfolder.RUN_FILES]
        assert not joins, (path, joins)
