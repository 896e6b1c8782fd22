"""Threshold tests along holders, for ``civa report``: ``thresholds.csv``, a section of
report.md and ``thresholds.png``.

For each condition run at ``MIN_LEVELS`` or more numbers of founding holders k (baseline runs
count as k = 0 of a condition that has no runs of its own there), and for each response
(``RESPONSES``: nAUP, the final population, and collapsed, whose mean is the probability of
collapse), ``tipping.threshold_test`` fits a step in k against a smooth quadratic in k over
all runs, with a seed-level bootstrap p-value, the threshold with its interval and a
bimodality check; ``tipping.holm`` corrects the p-values across the conditions of each
response. x is the ``holders`` column (k = prevalence x founders, rounded half up), so a
holder-count sweep (``civa sweep --holders all``) and any sweep with four or more prevalences
are tested alike.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from civa_env.experiments import plots, tipping

RESPONSES = ("nAUP", "final_population", "collapsed")
MIN_LEVELS = 4  # holder counts a condition needs for a test
N_BOOT = 999
LEVEL = 0.95
ALPHA = 0.05  # what the report calls a clear step (after Holm)
COLUMNS = ("condition", "response", "p_value", "p_holm", "threshold", "threshold_low",
           "threshold_high", "threshold_prevalence", "threshold_prevalence_low",
           "threshold_prevalence_high", "step_below", "step_above", "statistic", "sse_step",
           "sse_null", "n_seeds", "n_levels", "agents", "bimodality", "bimodality_x",
           "bimodal")


def tested_conditions(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs of each condition with at least ``MIN_LEVELS`` holder counts, baseline's runs
    standing in for k = 0 where the condition has none (sorted by condition)."""
    by_condition: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_condition[row["condition"]].append(row)
    base = by_condition.get("baseline", [])
    out = {}
    for condition, members in sorted(by_condition.items()):
        if condition == "baseline":
            continue
        if not any(m["holders"] == 0 for m in members):
            members = members + base
        if len({m["holders"] for m in members}) >= MIN_LEVELS:
            out[condition] = members
    return out


def threshold_table(rows: Sequence[dict[str, Any]], n_boot: int = N_BOOT, seed: int = 0,
                    level: float = LEVEL) -> list[dict[str, Any]]:
    """One record (``COLUMNS``) per tested condition and response, Holm-corrected per response.

    ``threshold`` is the first number of holders on the upper side of the jump (the jump
    lies between it and the level before), as ``tipping.threshold_test`` defines it;
    ``null_coef`` (not a column) holds the quadratic null's coefficients. A response that is
    the same in every run (nothing to fit), or a condition with one seed, gets NaN
    statistics; a response not measured (``collapsed`` of tables written before the column)
    gets no record.
    """
    records = []
    for condition, members in tested_conditions(rows).items():
        agents = {m["agents"] for m in members}
        n_agents = agents.pop() if len(agents) == 1 else math.nan
        for response in RESPONSES:
            x, seeds, y = _series(members, response)
            if not len(y):
                continue
            rec: dict[str, Any] = {c: math.nan for c in COLUMNS}
            rec.update(condition=condition, response=response, agents=n_agents,
                       n_seeds=len(set(seeds.tolist())), n_levels=len(set(x.tolist())),
                       bimodal=False, null_coef=None)
            if np.ptp(y) > 0 and rec["n_seeds"] >= 2:
                rec.update(tipping.threshold_test(x, seeds, y, n_boot=n_boot, seed=seed,
                                                  level=level))
            for key in ("", "_low", "_high"):
                rec[f"threshold_prevalence{key}"] = rec[f"threshold{key}"] / n_agents
            records.append(rec)
    for response in RESPONSES:
        tested = [r for r in records if r["response"] == response and
                  not math.isnan(r["p_value"])]
        for rec, p in zip(tested, tipping.holm([r["p_value"] for r in tested]), strict=True):
            rec["p_holm"] = float(p)
    return records


def _series(members: Sequence[dict[str, Any]],
            response: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Holders, seeds and the response of the runs that measured it."""
    runs = [m for m in members if not math.isnan(float(m.get(response, math.nan)))]
    return (np.array([m["holders"] for m in runs], dtype=float),
            np.array([m["seed"] for m in runs], dtype=int),
            np.array([float(m[response]) for m in runs]))


def write_thresholds(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """thresholds.csv: one row per record, NaN as an empty cell."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for rec in records:
            writer.writerow([_cell(rec[c]) for c in COLUMNS])
    return Path(path)


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    return str(value)


def report_lines(rows: Sequence[dict[str, Any]], out: Path, n_boot: int = N_BOOT) -> list[str]:
    """Write thresholds.csv and thresholds.png into ``out``; return report.md's section
    (nothing, and no files, when no condition has ``MIN_LEVELS`` holder counts)."""
    records = threshold_table(rows, n_boot=n_boot)
    if not records:
        return []
    write_thresholds(records, Path(out) / "thresholds.csv")
    plots.plot_thresholds(_panels(records, rows), Path(out) / "thresholds.png")
    agents = sorted({r["agents"] for r in records if not math.isnan(r["agents"])})
    founders = f"N = {agents[0]:g}" if len(agents) == 1 else "N"
    quasi = sorted({float(r["quasi_extinction"]) for r in rows
                    if not math.isnan(float(r.get("quasi_extinction", math.nan)))})
    collapse = (f"below {quasi[0]:g} x N" if len(quasi) == 1 else "below the quasi-extinction "
                "fraction of N")
    lines = ["## Thresholds along holders", "",
             f"For each condition run at {MIN_LEVELS} or more numbers of founding holders k "
             f"(of {founders} founders; baseline runs count as k = 0), a step in k (one level "
             "below a threshold, another above) is fitted against a smooth quadratic in k over "
             "all runs, for nAUP, the final population and collapsed (1 when the final "
             f"population is {collapse}; its mean is the probability of collapse). The "
             f"p-value comes from a seed-level bootstrap ({n_boot} resamples), and *p (Holm)* "
             "corrects it across the conditions of each response. A small p after Holm "
             f"(below {ALPHA:g}) means a step fits clearly better than a smooth quadratic: "
             "the response jumps at the threshold; a large one means a smooth curve explains "
             "the runs as well, whatever the size of the change. The threshold is where the "
             "step sits: the first number of holders above the jump (the jump lies between it "
             f"and the level before), in holders and as prevalence k / N, with its {LEVEL:.0%} "
             "seed-bootstrap interval; *bimodal* says whether the runs at a level either side "
             "of the jump split into two groups (Sarle's coefficient above 5/9). Table: "
             "`thresholds.csv`.", "",
             "| condition | response | p | p (Holm) | threshold, holders | threshold, "
             "prevalence | below -> above | seeds | bimodal |",
             "|---|---|---:|---:|---|---|---|---:|---|"]
    for rec in records:
        if math.isnan(rec["p_value"]):
            lines.append(f"| {rec['condition']} | {rec['response']} | - | - | (the same in "
                         f"every run: nothing to test) | | | {rec['n_seeds']} | |")
            continue
        clear = " (clear)" if rec["p_holm"] < ALPHA else ""
        lines.append(
            f"| {rec['condition']} | {rec['response']} | {rec['p_value']:.3f} | "
            f"{rec['p_holm']:.3f}{clear} | {rec['threshold']:g} "
            f"[{rec['threshold_low']:g}, {rec['threshold_high']:g}] | "
            f"{rec['threshold_prevalence']:.2f} [{rec['threshold_prevalence_low']:.2f}, "
            f"{rec['threshold_prevalence_high']:.2f}] | {rec['step_below']:.3g} -> "
            f"{rec['step_above']:.3g} | {rec['n_seeds']} | "
            f"{'yes' if rec['bimodal'] else 'no'} |")
    return [*lines, "", "![thresholds.png](thresholds.png)", ""]


def _panels(records: Sequence[dict[str, Any]],
            rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What plots.plot_thresholds draws: runs, per-k mean and spread, the two fits."""
    members = tested_conditions(rows)
    panels = []
    for rec in records:
        x, _, y = _series(members[rec["condition"]], rec["response"])
        levels = np.unique(x)
        per_k = [y[x == k] for k in levels]
        tested = not math.isnan(rec["p_value"])
        if tested:
            c0, c1, c2 = rec["null_coef"]
            jump_from = float(levels[levels < rec["threshold"]].max())
            span_from = float(levels[levels < rec["threshold_low"]].max())
        panels.append({
            "condition": rec["condition"], "response": rec["response"], "x": x, "y": y,
            "levels": levels, "mean": np.array([v.mean() for v in per_k]),
            "sd": np.array([v.std() for v in per_k]),
            "quadratic": [c2, c1, c0] if tested else None,
            # Where the jump may lie: from the level before the interval's low end to its high.
            "step": ((jump_from, rec["threshold"], span_from, rec["threshold_high"],
                      rec["step_below"], rec["step_above"]) if tested else None),
            "p_holm": rec["p_holm"]})
    return panels
