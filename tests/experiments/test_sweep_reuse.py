"""Prevalence 0 is the baseline world: a sweep runs it once per seed and every prevalence-0
cell shares that run (``same_as`` in results.csv), resumably, and the report still reads it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from civa_env.cli import main
from civa_env.experiments.results import load_results
from civa_env.experiments.runfolder import is_complete_run
from civa_env.experiments.sweep import Sweep, run_task, usage_by_cell, write_results
from civa_env.world.config import Config

CONDITIONS = ["with:power", "without:benevolence", "with:tradition"]
PREVALENCES = [0.0, 0.5, 1.0]
BASE = Config(n_agents=6, max_days=6)
# A run's own figures: everything but what names the cell.
NAMING = ("run_id", "condition", "prevalence", "holders", "same_as")


def figures(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in NAMING}


def run_dirs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "runs").iterdir())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """3 conditions x prevalences {0, 0.5, 1} x 2 seeds, uninterrupted."""
    out = tmp_path_factory.mktemp("reuse") / "sweep"
    report = Sweep(out, CONDITIONS, PREVALENCES, 2, BASE).run(workers=2, progress=False)
    return out, report


def test_prevalence_zero_runs_once_per_seed(reference):
    out, report = reference
    assert (report.total, report.ran, report.shared, report.reused) == (18, 14, 4, 4)
    assert report.ran == 2 + 3 * 2 * 2  # not 3 x 3 x 2 = 18
    assert len(run_dirs(out)) == 14
    table = load_results(out / "results.csv")
    assert len(table) == 18  # a row for every cell
    assert {(r["condition"], r["prevalence"], r["seed"]) for r in table.values()} == {
        (c, p, s) for c in CONDITIONS for p in PREVALENCES for s in (0, 1)}
    shared = {rid: r for rid, r in table.items() if r["same_as"]}
    assert sorted(shared) == ["with-tradition__p0.00__s0", "with-tradition__p0.00__s1",
                              "without-benevolence__p0.00__s0",
                              "without-benevolence__p0.00__s1"]
    for rid, row in table.items():
        assert is_complete_run(out / "runs" / rid) == (not row["same_as"])
    for row in shared.values():
        source = table[row["same_as"]]  # the run done, in the table too
        assert source["prevalence"] == 0 and source["seed"] == row["seed"]
        assert not source["same_as"] and figures(source) == figures(row)
        assert row["holders"] == 0


def test_a_shared_cell_is_exactly_its_own_run(reference, tmp_path):
    """What the cell would have given had it been run (paired worlds): the same figures."""
    out, _ = reference
    sweep = Sweep(tmp_path / "other", CONDITIONS, PREVALENCES, 2, BASE)
    task = next(t for t in sweep.tasks() if t.run_id == "without-benevolence__p0.00__s1")
    write_results(tmp_path / "own.csv", [run_task(task)])
    own = _csv(tmp_path, "own.csv")[task.run_id]
    shared = _csv(out)[task.run_id]
    assert shared["same_as"] == "with-power__p0.00__s1" and not own["same_as"]
    assert figures(own) == figures(shared)


def test_interrupted_then_resumed_gives_the_same_table(reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "sweep"
    seen = []

    def stop(row):
        seen.append(row["run_id"])
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Sweep(out, CONDITIONS, PREVALENCES, 2, BASE).run(workers=1, on_row=stop,
                                                         progress=False)
    # The first run is with:power at 0, seed 0: its row and the two cells sharing it.
    assert seen[:3] == ["with-power__p0.00__s0", "without-benevolence__p0.00__s0",
                        "with-tradition__p0.00__s0"]
    partial = load_results(out / "results.csv")
    assert set(seen) <= set(partial) and len(partial) < 18
    done = sum(not r["same_as"] for r in partial.values())
    again = Sweep(out, CONDITIONS, PREVALENCES, 2, BASE).run(workers=2, progress=False)
    assert again.already == len(partial) and again.ran == 14 - done
    assert _csv(out) == _csv(ref_out)
    assert run_dirs(out) == run_dirs(ref_out)

    # Rows lost: the run's row comes back from its folder, the shared ones from it.
    table = out / "results.csv"
    lines = table.read_text().splitlines()
    table.write_text("\n".join(line for line in lines if "__p0.00__" not in line) + "\n")
    again = Sweep(out, CONDITIONS, PREVALENCES, 2, BASE).run(workers=1, progress=False)
    assert (again.recovered, again.ran, again.reused) == (2, 0, 4)
    assert _csv(out) == _csv(ref_out)
    # A rerun does nothing.
    again = Sweep(out, CONDITIONS, PREVALENCES, 2, BASE).run(workers=1, progress=False)
    assert (again.already, again.ran, again.reused) == (18, 0, 0)


def _csv(out: Path, name: str = "results.csv") -> dict[str, dict[str, str]]:
    with open(out / name, newline="") as f:
        return {r["run_id"]: r for r in csv.DictReader(f)}


def test_baseline_in_the_grid_is_the_run_shared(tmp_path):
    out = tmp_path / "sweep"
    report = Sweep(out, ["baseline", "with:power"], [0.0, 1.0], 2, BASE).run(progress=False)
    assert (report.total, report.ran, report.shared) == (6, 4, 2)
    table = load_results(out / "results.csv")
    assert table["with-power__p0.00__s1"]["same_as"] == "baseline__p0.00__s1"
    assert run_dirs(out) == ["baseline__p0.00__s0", "baseline__p0.00__s1",
                             "with-power__p1.00__s0", "with-power__p1.00__s1"]
    # A later grid in the same folder shares the runs already there.
    report = Sweep(out, ["without:benevolence"], [0.0, 1.0], 2, BASE).run(progress=False)
    assert (report.ran, report.reused) == (2, 2)
    assert load_results(out / "results.csv")["without-benevolence__p0.00__s0"]["same_as"] == (
        "baseline__p0.00__s0")


def test_holder_counts_share_k_zero_and_the_report_reads_it(tmp_path, capsys,
                                                             monkeypatch):
    out = tmp_path / "sweep"
    assert main(["sweep", "--holders", "0,3,6", "--conditions", "with:power,with:tradition",
                 "--agents", "6", "--days", "6", "--seeds", "2", "--workers", "1",
                 "--no-progress", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "12 cells in the grid (10 runs)" in said and "2 prevalence-0 cells share" in said
    table = load_results(out / "results.csv")
    assert table["with-tradition__p0.00__s0"]["same_as"] == "with-power__p0.00__s0"
    # The report's tables and its runs index (the figures are left out: slow, and the same
    # as before, the shared cells having the figures their runs would have had).
    from civa_env.experiments import report

    monkeypatch.setattr(report, "_figures", lambda *args, **kwargs: [])
    rows = list(table.values())
    cells = {(r["condition"], r["prevalence"]): r["n"] for r in report.summarize_rows(rows)}
    assert cells[("with:tradition", 0.0)] == 2 and len(cells) == 6
    report.build_report(out)
    assert "| with:tradition | 0 | 2 |" in (out / "report" / "report.md").read_text()
    runs_md = (out / "report" / "runs.md").read_text()
    line = next(x for x in runs_md.splitlines() if x.startswith("| with-tradition__p0.00__s0"))
    assert "same run as with-power__p0.00__s0" in line
    assert "runs/with-power__p0.00__s0/" in line or "no page" in line  # the shared run's page


def test_llm_usage_counts_a_shared_run_once():
    rows = [{"condition": "with:power", "prevalence": 0.0, "llm_tokens": 10.0,
             "llm_cost_usd": 0.5, "same_as": ""},
            {"condition": "with:tradition", "prevalence": 0.0, "llm_tokens": 10.0,
             "llm_cost_usd": 0.5, "same_as": "with-power__p0.00__s0"}]
    assert usage_by_cell(rows) == [{"condition": "with:power", "prevalence": 0.0, "runs": 1,
                                    "llm_tokens": 10, "llm_cost_usd": 0.5}]
