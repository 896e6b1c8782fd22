"""``civa resilience`` end to end on a tiny world: the outputs, resuming, the pre-stress days
shared by every level, and the bad-input errors (one line, nothing done lost)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from civa_env.cli import main
from civa_env.experiments.resilience import (
    DIAGNOSTIC_COLUMNS,
    RESILIENCE_COLUMNS,
    RUN_COLUMNS,
    Point,
    fold_verdict,
    load_runs,
    point_id,
)

T0, H = 3, 6
ARGS = ["resilience", "--conditions", "with:power,baseline", "--prevalences", "1",
        "--seeds", "3", "--agents", "6", "--stress-day", str(T0), "--horizon", str(H),
        "--levels", "1,3,6", "--refine", "1", "--bootstrap", "200", "--workers", "2",
        "--no-progress"]


def table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One resilience test, shared by the tests below (its runs are the slow part)."""
    out = tmp_path_factory.mktemp("resilience") / "out"
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def test_outputs(folder):
    rows = table(folder / "resilience.csv")
    assert set(RESILIENCE_COLUMNS) <= set(rows[0])
    assert [(r["condition"], r["prevalence"]) for r in rows] == [("with:power", "1"),
                                                                 ("baseline", "0")]
    for r in rows:
        assert r["stressor"] == "upkeep" and r["n_seeds"] == "3"
        assert len(r["levels"].split()) > 3  # refined around mu*
        if r["status"] == "ok":
            for key in ("d_FB", "d_FB_low", "d_FB_high", "mu_star", "slope"):
                assert math.isfinite(float(r[key])), key
            assert float(r["d_FB"]) == pytest.approx(100 * (float(r["mu_star"]) - 1))
            assert r["reading"] in ("fold", "collapse threshold")
    power = rows[0]
    assert power["status"] == "ok" and power["n_shared"] == "3"
    assert float(power["d_FB_diff_low"]) <= float(power["d_FB_diff"]) \
        <= float(power["d_FB_diff_high"])
    assert rows[1]["d_FB_diff"] == ""  # baseline against itself: undefined

    png = (folder / "collapse_vs_stress.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    diagnostics = table(folder / "diagnostics.csv")
    assert tuple(diagnostics[0]) == DIAGNOSTIC_COLUMNS
    names = {d["diagnostic"] for d in diagnostics if d["scope"] == "cell"}
    assert {"hysteresis", "recovery_time", "ac1_population", "variance_population",
            "ac1_wealth", "variance_wealth", "bimodality"} <= names
    text = (folder / "resilience.md").read_text()
    assert "| with:power | 1 |" in text and "## Fold diagnostics" in text
    assert "collapse threshold" in text or "distance to a fold" in text

    runs = load_runs(folder / "runs.csv")
    kinds = {r["kind"] for r in runs.values()}
    assert kinds == {"stress", "knockdown", "pulse"}
    with open(folder / "runs.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == RUN_COLUMNS
    for r in runs.values():
        assert len(r["population"]) == T0 + H and len(r["wealth"]) == T0 + H
        assert r["collapsed"] == int(r["final_population"] < 0.2 * 6)
        assert (folder / "runs" / r["run_id"] / "metrics.json").is_file()


def test_resumes_without_rerunning(folder, capsys):
    before = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/metrics.json")}
    result = (folder / "resilience.csv").read_text()
    assert main([*ARGS, "--out", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{len(before)} already in runs.csv, 0 recovered from run folders, 0 run now" in out
    # The table lost: every row comes back from the run folders, nothing runs again.
    (folder / "runs.csv").unlink()
    assert main([*ARGS, "--out", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"0 already in runs.csv, {len(before)} recovered from run folders, 0 run now" in out
    after = {p: p.stat().st_mtime_ns for p in (folder / "runs").glob("*/metrics.json")}
    assert after == before
    assert (folder / "resilience.csv").read_text() == result


def test_days_before_the_stress_are_the_same_at_every_level(folder):
    def days(mu: float, seed: int, last: int | None) -> list[dict]:
        rid = point_id(Point("stress", "with:power", 1.0, seed, mu), "upkeep")
        lines = (folder / "runs" / rid / "events.jsonl").read_text().splitlines()
        events = [json.loads(line) for line in lines]
        return [e for e in events if last is None or e["day"] <= last]

    for seed in (0, 1):
        calm, stressed = days(1.0, seed, T0), days(6.0, seed, T0)
        assert calm and calm == stressed
        assert days(1.0, seed, None) != days(6.0, seed, None)
    config = json.loads((folder / "runs" / point_id(Point("stress", "baseline", 0.0, 0, 3.0),
                                                    "upkeep") / "config.json").read_text())
    env = config["env"]
    assert (env["stress_day"], env["max_days"], env["stress_upkeep"]) == (T0 + 1, T0 + H, 3.0)


@pytest.mark.parametrize("bad, words", [
    (["--levels", "1,-2"], "--levels"),
    (["--horizon", "0"], "--horizon"),
    (["--quasi-extinction", "0"], "--quasi-extinction"),
    (["--quasi-extinction", "1.5"], "--quasi-extinction"),
    (["--stressor", "heat"], "--stressor"),
    (["--refine", "-1"], "--refine"),
    (["--days", "9"], "--days"),
    (["--set", "stress_upkeep=2"], "stress_upkeep"),
])
def test_bad_input_is_one_line_and_loses_nothing(folder, capsys, bad, words):
    runs = (folder / "runs.csv").read_bytes()
    assert main([*ARGS, "--out", str(folder), *bad]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("civa: error:") and words in err[0], err
    assert (folder / "runs.csv").read_bytes() == runs


def test_fold_verdict_rule():
    def rows(*held):
        return [{"diagnostic": d, "held": True} for d in held]

    assert fold_verdict(rows("hysteresis", "recovery_time", "bimodality")) == "fold"
    assert fold_verdict(rows("hysteresis", "ac1_population")) == "collapse threshold"
    assert fold_verdict(rows("recovery_time", "ac1_population", "bimodality")) \
        == "collapse threshold"
