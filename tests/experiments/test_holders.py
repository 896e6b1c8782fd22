"""Holder-count sweeps (``civa sweep --holders``) and the threshold test of ``civa report``
(thresholds.csv, its report.md section, thresholds.png), end to end on a tiny world."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

from civa_env.cli import main
from civa_env.experiments.results import load_results
from civa_env.experiments.sweep import holder_prevalences
from civa_env.world.values import holder_count

TINY = ["--agents", "4", "--days", "8", "--seeds", "3", "--conditions", "with:power",
        "--workers", "1", "--no-progress"]
THRESHOLD_COLUMNS = ("condition", "response", "p_value", "p_holm", "threshold",
                     "threshold_low", "threshold_high", "step_below", "step_above", "n_seeds",
                     "bimodal")
NEW_COLUMNS = ("holders", "collapsed", "quasi_extinction")


def table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def holder_sweep(tmp_path_factory) -> Path:
    """``civa sweep --holders all`` on 4 founders: k = 0..4, 3 seeds each (15 runs)."""
    out = tmp_path_factory.mktemp("holders") / "sweep"
    assert main(["sweep", "--holders", "all", *TINY, "--out", str(out)]) == 0
    return out


def test_every_holder_count_round_trips():
    for n in range(1, 201):
        prevalences = holder_prevalences(range(n + 1), n)
        assert [holder_count(p, n) for p in prevalences] == list(range(n + 1))
    assert holder_prevalences([6, 0, 3, 3], 12) == [0.0, 0.25, 0.5]
    for bad in (-1, 13, 1.5):
        with pytest.raises(ValueError, match="outside 0..12"):
            holder_prevalences([bad], 12)


def test_holder_sweep_then_report(holder_sweep):
    rows = table(holder_sweep / "results.csv")
    assert len(rows) == 15
    assert sorted((int(r["holders"]), int(r["seed"])) for r in rows) == [
        (k, s) for k in range(5) for s in range(3)]
    for r in rows:
        assert holder_count(float(r["prevalence"]), 4) == int(r["holders"])
        assert float(r["quasi_extinction"]) == 0.2
        assert int(r["collapsed"]) == (float(r["final_population"]) < 0.2 * 4)

    assert main(["report", str(holder_sweep), "--no-pages"]) == 0
    report = holder_sweep / "report"
    found = table(report / "thresholds.csv")
    assert set(THRESHOLD_COLUMNS) <= set(found[0])
    assert [(r["condition"], r["response"]) for r in found] == [
        ("with:power", "nAUP"), ("with:power", "final_population"),
        ("with:power", "collapsed")]
    for r in found:
        assert r["n_seeds"] == "3" and r["agents"] == "4"
        if r["p_value"]:  # empty: the response was the same in every run
            assert 0 < float(r["p_value"]) <= float(r["p_holm"]) <= 1
            assert float(r["threshold_low"]) <= float(r["threshold"]) <= float(
                r["threshold_high"])
            assert float(r["threshold_prevalence"]) == float(r["threshold"]) / 4
    text = (report / "report.md").read_text()
    assert "## Thresholds along holders" in text and "a step fits clearly better" in text
    assert "## Community metrics" in text and "## Figures" in text  # the other sections stay
    assert (report / "thresholds.png").stat().st_size > 0


def test_old_results_without_the_new_columns(holder_sweep, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(holder_sweep, old, ignore=shutil.ignore_patterns("report"))
    rows = table(old / "results.csv")
    with open(old / "results.csv", "w", newline="", encoding="utf-8") as f:
        kept = [c for c in rows[0] if c not in NEW_COLUMNS]
        writer = csv.DictWriter(f, fieldnames=kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    loaded = load_results(old / "results.csv")
    assert sorted(r["holders"] for r in loaded.values()) == sorted(
        int(r["holders"]) for r in rows)  # derived from prevalence and agents
    assert all(math.isnan(r["collapsed"]) for r in loaded.values())

    assert main(["report", str(old), "--no-pages"]) == 0
    found = table(old / "report" / "thresholds.csv")
    assert [r["response"] for r in found] == ["nAUP", "final_population"]  # collapse unmeasured

    # The same sweep again runs nothing and fills the columns in (at its quasi-extinction).
    assert main(["sweep", "--holders", "all", *TINY, "--quasi-extinction", "0.9",
                 "--out", str(old)]) == 0
    again = table(old / "results.csv")
    assert len(again) == 15 and set(NEW_COLUMNS) <= set(again[0])
    for r in again:
        assert int(r["collapsed"]) == (float(r["final_population"]) < 0.9 * 4)


@pytest.mark.parametrize(("argv", "message"), [
    (["--holders", "all", "--prevalence", "0,1"],
     "argument --prevalence: not allowed with argument --holders"),
    (["--holders", "0,5"], "--holders 5 is out of range"),
    (["--holders=-1"], "--holders -1 is out of range"),
    (["--holders", "1.5"], "--holders expects 'all' or whole numbers"),
    (["--holders", "all", "--quasi-extinction", "1"], "--quasi-extinction must be a fraction"),
])
def test_bad_holders_are_one_line_errors(argv, message, tmp_path, capsys):
    out = tmp_path / "sweep"
    try:
        code = main(["sweep", *TINY, *argv, "--out", str(out)])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1 and message in lines[0], lines
    assert lines[0].startswith("civa: error:")
    assert not out.exists()  # nothing started
