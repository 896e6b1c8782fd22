"""Reports of a sweep: Markdown tables with bootstrap intervals, plots, links to run pages.

``build_report(sweep_dir)`` reads ``results.csv`` (plus the run folders: LLM residents'
questionnaire answers, and each run's page when asked to build them) and writes
``report/``: ``report.md`` (summary tables per condition and prevalence, the largest effects
against baseline, prevalence trends), ``runs.md`` (one line per run, linked to its
``view.html``), ``<metric>_vs_prevalence.png`` and ``population_curves.png``.

Everything is read before anything is written, so a report never disagrees with its
figures. A run folder that cannot be read is skipped, not fatal: its row of results.csv
still counts in the tables (the table is the source), and report.md lists the folder under
"Skipped run folders" with the reason.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from civa_env.experiments import plots, thresholds
from civa_env.experiments.results import BEHAVIOUR_RATES, load_results
from civa_env.experiments.runfolder import (
    OUT,
    SettingError,
    read_env_config,
    read_questionnaire,
)
from civa_env.policies.llm.questionnaire import orientation_change

MACRO = ("nAUP", "SC", "ED", "IC", "CC")
REPORTED = (*MACRO, *BEHAVIOUR_RATES)
# Metrics whose effects against baseline and trends with prevalence the report lists.
TRENDED = (*MACRO, "betrayal_rate", "deception_rate")
N_BOOT = 2000


def bootstrap_ci(x: Sequence[float], rng: np.random.Generator, n_boot: int = N_BOOT,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean (lo = hi = mean for one value)."""
    x = np.asarray(x, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return mean, float(lo), float(hi)


def summarize_rows(rows: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """One record per (condition, prevalence): n, and mean/lo/hi of every reported metric."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["condition"], row["prevalence"])].append(row)
    rng = np.random.default_rng(seed)
    out = []
    for (condition, prevalence), members in sorted(groups.items(), key=_order):
        rec: dict[str, Any] = {"condition": condition, "prevalence": prevalence,
                               "n": len(members)}
        for metric in REPORTED:
            rec[f"{metric}_mean"], rec[f"{metric}_lo"], rec[f"{metric}_hi"] = bootstrap_ci(
                [m[metric] for m in members], rng)
        days = max(len(m["population"]) for m in members)
        series = np.array([np.pad(m["population"], (0, days - len(m["population"])))
                           for m in members])
        rec["population"] = series.mean(axis=0).tolist()
        out.append(rec)
    return out


def _order(item: tuple[tuple[str, float], Any]) -> tuple[int, str, float]:
    (condition, prevalence), _ = item
    head = condition.split(":")[0]
    rank = {"baseline": 0, "with": 1, "without": 2}.get(head, 3)
    return rank, condition.split(":")[-1], prevalence


def _cell(rec: dict[str, Any], metric: str, digits: int = 2) -> str:
    mean, lo, hi = rec[f"{metric}_mean"], rec[f"{metric}_lo"], rec[f"{metric}_hi"]
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _table(stats: list[dict[str, Any]], metrics: Sequence[str], digits: int) -> list[str]:
    head = "| condition | prevalence | n | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (3 + len(metrics))]
    for rec in stats:
        cells = " | ".join(_cell(rec, m, digits) for m in metrics)
        lines.append(f"| {rec['condition']} | {rec['prevalence']:g} | {rec['n']} | {cells} |")
    return lines


def effects(stats: list[dict[str, Any]], metric: str, top: int = 8) -> list[dict[str, Any]]:
    """Largest differences from baseline's mean (with whether the interval excludes it)."""
    base = next((r for r in stats if r["condition"] == "baseline"), None)
    if base is None:
        return []
    ref = base[f"{metric}_mean"]
    out = []
    for rec in stats:
        if rec["condition"] == "baseline" or rec["prevalence"] == 0:
            continue
        diff = rec[f"{metric}_mean"] - ref
        clear = rec[f"{metric}_lo"] > ref or rec[f"{metric}_hi"] < ref
        out.append({"condition": rec["condition"], "prevalence": rec["prevalence"],
                    "mean": rec[f"{metric}_mean"], "diff": diff, "clear": clear})
    return sorted(out, key=lambda r: -abs(r["diff"]))[:top]


def paired_effects(rows: Sequence[dict[str, Any]], metric: str, seed: int = 0,
                   n_boot: int = N_BOOT) -> list[dict[str, Any]]:
    """Each cell's difference from baseline over the seeds both ran (paired worlds).

    A seed is the same world in every cell, so the per-seed differences ``cell - baseline``
    cancel the world-to-world noise that both share. For each cell (prevalence > 0): the
    mean difference, its 95% bootstrap interval over the shared seeds (``lo``, ``hi``), and
    for comparison the width of the interval that an unpaired comparison of the same runs
    would give (cell and baseline resampled independently: ``unpaired_width``).
    """
    base = {r["seed"]: r[metric] for r in rows if r["condition"] == "baseline"}
    groups: dict[tuple[str, float], dict[int, float]] = defaultdict(dict)
    for r in rows:
        if r["condition"] != "baseline" and r["prevalence"] > 0:
            groups[(r["condition"], r["prevalence"])][r["seed"]] = r[metric]
    rng = np.random.default_rng(seed)
    out = []
    for (condition, prevalence), cell in sorted(groups.items(), key=_order):
        seeds = sorted(set(cell) & set(base))
        if len(seeds) < 2:
            continue
        x = np.array([cell[s] for s in seeds])
        b = np.array([base[s] for s in seeds])
        mean, lo, hi = bootstrap_ci(x - b, rng, n_boot)
        pick_x = rng.integers(0, len(x), size=(n_boot, len(x)))
        pick_b = rng.integers(0, len(b), size=(n_boot, len(b)))
        unpaired = x[pick_x].mean(axis=1) - b[pick_b].mean(axis=1)
        u_lo, u_hi = np.quantile(unpaired, [0.025, 0.975])
        out.append({"condition": condition, "prevalence": prevalence, "n": len(seeds),
                    "diff": mean, "lo": lo, "hi": hi, "clear": lo > 0 or hi < 0,
                    "width": hi - lo, "unpaired_width": float(u_hi - u_lo)})
    return out


def trends(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Pearson r between prevalence and each metric, per condition (runs at p = 0 included)."""
    by_condition: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_condition[row["condition"]].append(row)
    base_rows = by_condition.get("baseline", [])
    out = []
    for condition, members in sorted(by_condition.items()):
        if condition == "baseline":
            continue
        if not any(m["prevalence"] == 0 for m in members):
            members = members + base_rows  # baseline is prevalence 0 of every condition
        x = np.array([m["prevalence"] for m in members])
        rec: dict[str, Any] = {"condition": condition}
        for metric in metrics:
            y = np.array([m[metric] for m in members])
            ok = x.std() > 0 and y.std() > 0
            rec[metric] = float(np.corrcoef(x, y)[0, 1]) if ok else 0.0
        out.append(rec)
    return out


def _viewer() -> Any | None:
    try:
        return importlib.import_module("civa_env.viewer")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("civa_env"):
            return None
        raise


# Errors of a run folder that make the report skip it (RunFolderError is a ValueError; a
# file that is not UTF-8 text is a UnicodeDecodeError, a ValueError too).
UNREADABLE = (ValueError, OSError)


def build_report(sweep_dir: Path, out: Path | None = None, pages: bool = True,
                 title: str | None = None,
                 on_skip: Callable[[str, str], None] | None = None) -> Path:
    """Write the report of a sweep folder; returns the path of report.md.

    Everything is read first (results.csv, the run folders, their pages built), then the
    report folder is written. A run folder that cannot be read is skipped: report.md lists
    it under "Skipped run folders" with the reason, and ``on_skip(run_id, reason)`` is
    called for it.

    Args:
        sweep_dir: folder with results.csv (and runs/).
        out: report folder (default ``sweep_dir/report``).
        pages: link each run to ``<run_dir>/view.html``, building the page with
            ``civa_env.viewer.build_page`` when that module is installed.
        title: heading of report.md.
        on_skip: told of each skipped run folder.

    Raises:
        SettingError: ``sweep_dir`` has no results.csv, or one without finished runs.
        ResultsError: a corrupt results.csv.
    """
    sweep_dir = Path(sweep_dir)
    results = sweep_dir / "results.csv"
    rows = _finished_rows(sweep_dir, results)
    out = Path(out) if out is not None else sweep_dir / "report"
    skipped: dict[str, str] = {}
    # Reading: nothing in the report folder is written before all of it is read.
    orientation = orientation_changes(sweep_dir, rows, skipped)
    page_links = _run_pages(sweep_dir, rows, skipped) if pages else None
    stats = summarize_rows(rows)
    base = next((r for r in stats if r["condition"] == "baseline"), None)
    for run, reason in skipped.items():
        if on_skip is not None:
            on_skip(run, reason)
    # Writing.
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(stats, base, out)
    lines = [*_overview(rows, results, title), *_tables(stats), *_effect_lines(stats, base),
             *_paired_lines(rows), *_trend_lines(rows), *_orientation_lines(orientation),
             *thresholds.report_lines(rows, out),
             "## Figures", "",
             *[plots.figure_markdown(name) for name in figures], "",
             *_skipped_lines(sweep_dir, skipped)]
    if page_links is not None:
        lines += ["Runs: [runs.md](runs.md)", ""]
        _write_runs_index(out, rows, page_links)
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _skipped_lines(sweep_dir: Path, skipped: dict[str, str]) -> list[str]:
    """The run folders the report could not read, and why (nothing when none)."""
    if not skipped:
        return []
    return ["## Skipped run folders", "",
            f"{len(skipped)} run folder{'s' if len(skipped) > 1 else ''} under "
            f"`{sweep_dir / 'runs'}` could not be read. The rows of results.csv of these "
            "runs still count in the tables above; their folders add nothing to the report "
            "(no questionnaire answers, no page).", "",
            "| run | reason |", "|---|---|",
            *[f"| {run} | {_cell_text(reason)} |" for run, reason in sorted(skipped.items())],
            ""]


def _cell_text(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _finished_rows(sweep_dir: Path, results: Path) -> list[dict[str, Any]]:
    """The rows of results.csv; an error when there is no table or no row yet."""
    if not results.exists():
        raise SettingError("{sweep_dir} has no results.csv: is it a sweep folder? (the {out} "
                           "of a sweep holds one)", OUT, {"sweep_dir": sweep_dir})
    rows = list(load_results(results).values())
    if not rows:
        raise ValueError(f"{results} holds no finished runs yet")
    return rows


def _figures(stats: list[dict[str, Any]], base: dict[str, Any] | None, out: Path) -> list[str]:
    """Each reported metric against prevalence, and the population curves of baseline and
    of every condition at the highest prevalence; returns the PNG names."""
    figures = []
    for metric in REPORTED:
        path = plots.plot_metric_vs_prevalence(stats, metric, out / f"{metric}_vs_prevalence.png",
                                               base)
        figures.append(path.name)
    top_p = max(r["prevalence"] for r in stats)
    curves = {f"{r['condition']}": r["population"] for r in stats
              if r["condition"] == "baseline" or r["prevalence"] == top_p}
    plots.plot_population_curves(curves, out / "population_curves.png",
                                 f"Population per condition at prevalence {top_p:g} "
                                 "(mean over seeds)")
    figures.append("population_curves.png")
    return figures


def _overview(rows: list[dict[str, Any]], results: Path, title: str | None) -> list[str]:
    """The heading and one paragraph: what was run, how many, how cells are computed."""
    policies = sorted({r["policy"] for r in rows})
    agents = sorted({r["agents"] for r in rows})
    days = sorted({r["days"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    return [f"# {title or 'CIVA sweep report'}", "",
            f"{len(rows)} runs; policy {', '.join(policies)}; {', '.join(map(str, agents))} "
            f"residents; {', '.join(map(str, days))} days; seeds {seeds[0]}..{seeds[-1]} "
            f"({len(seeds)} per cell). Cells give the mean and its 95% bootstrap interval "
            f"({N_BOOT} resamples). Source: `{results.name}`.", ""]


def _tables(stats: list[dict[str, Any]]) -> list[str]:
    """The community metrics and behaviour rates per (condition, prevalence)."""
    return ["## Community metrics", "", *_table(stats, MACRO, 2), "",
            "## Behaviour rates (events per resident-day)", "",
            *_table(stats, BEHAVIOUR_RATES, 3), ""]


def _effect_lines(stats: list[dict[str, Any]], base: dict[str, Any] | None) -> list[str]:
    """The largest differences from baseline, per metric (nothing without a baseline)."""
    if base is None:
        return []
    lines = ["## Largest effects against baseline", "",
             "Difference of the cell mean from the baseline mean; *clear* when the cell's "
             "95% interval excludes the baseline mean.", ""]
    for metric in TRENDED:
        eff = effects(stats, metric)
        if not eff:
            continue
        lines.append(f"**{metric}** (baseline {base[f'{metric}_mean']:.3f}): " + "; ".join(
            f"{e['condition']} @ {e['prevalence']:g}: {e['diff']:+.3f}"
            + (" (clear)" if e["clear"] else "") for e in eff))
        lines.append("")
    return lines


def _paired_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Paired differences from baseline (shared seeds), with the interval widths an
    unpaired comparison would give; nothing without baseline runs on shared seeds."""
    paired = {metric: paired_effects(rows, metric) for metric in TRENDED}
    if not any(paired.values()):
        return []
    lines = ["## Paired effects against baseline", "",
             "A seed is the same world in every cell (paired worlds), so each cell is compared "
             "with baseline seed by seed: the mean of the per-seed differences and its 95% "
             "bootstrap interval; *clear* when the interval excludes 0. The last column is the "
             "median ratio of the paired interval's width to the unpaired one's (cell and "
             "baseline resampled independently) over the cells.", "",
             "| metric | clear cells | largest paired effects | paired / unpaired width |",
             "|---|---|---|---|"]
    for metric, eff in paired.items():
        if not eff:
            continue
        clear = sum(e["clear"] for e in eff)
        top = sorted(eff, key=lambda e: -abs(e["diff"]))[:4]
        shown = "; ".join(f"{e['condition']} @ {e['prevalence']:g}: {e['diff']:+.3f} "
                          f"[{e['lo']:+.3f}, {e['hi']:+.3f}]" for e in top)
        ratios = [e["width"] / e["unpaired_width"] for e in eff if e["unpaired_width"] > 0]
        ratio = f"{np.median(ratios):.2f}" if ratios else "-"
        lines.append(f"| {metric} | {clear} of {len(eff)} | {shown} | {ratio} |")
    return [*lines, ""]


def _trend_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The table of correlations with prevalence (nothing when no condition varies)."""
    trend = trends(rows, TRENDED)
    if not trend:
        return []
    lines = ["## Trends with prevalence", "",
             "Pearson r between prevalence and the metric over the runs of each condition "
             "(baseline runs count as prevalence 0).", "",
             "| condition | " + " | ".join((*MACRO, "betrayal", "deception")) + " |",
             "|" + "---|" * (1 + len(MACRO) + 2)]
    for rec in trend:
        lines.append(f"| {rec['condition']} | " + " | ".join(
            f"{rec[m]:+.2f}" for m in TRENDED) + " |")
    lines.append("")
    return lines


def orientation_changes(sweep_dir: Path, rows: Sequence[dict[str, Any]],
                        skipped: dict[str, str] | None = None) -> dict[str, Any]:
    """The value-orientation change of each (condition, prevalence) cell against baseline.

    Reads each run's questionnaire.jsonl (LLM residents only). For a cell, the holders are
    the residents under the cell's condition; the reference is the residents of the sweep's
    baseline runs or, without any, the baseline (non-holding) residents of the cell's own
    runs. Per value (``questionnaire.orientation_change``): (holders' mean rating -
    reference mean) / 5, the scale's range, at the start (founders' answers before their
    first action, day 0) and at the end (answers on the run's last day, ``max_days``: the
    survivors only), and the change between them (end minus start of holders, less the same
    of the reference). Returns ``{"reference": "baseline runs" | "non-holders", "cells":
    [{condition, prevalence, n_start, n_end, start, end, change}]}``, ``start``/``end``/
    ``change`` mapping value labels to figures (empty when not asked).

    A run folder that cannot be read is passed over; with ``skipped`` given, it goes there
    ({run id: the reason}); without it, the error is raised.
    """
    answers: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    last_day = {}
    for row in rows:
        run_dir = Path(sweep_dir) / "runs" / row["run_id"]
        if not run_dir.is_dir():  # the table alone is enough for the rest of the report
            continue
        try:
            found = read_questionnaire(run_dir)
            if found:
                last_day[row["run_id"]] = read_env_config(run_dir).max_days
        except UNREADABLE as err:
            if skipped is None:
                raise
            skipped.setdefault(row["run_id"], _reason(err))
            continue
        for q in found:
            answers[(row["condition"], row["prevalence"])].append(dict(q, run=row["run_id"]))
    if not answers:
        return {"reference": None, "cells": []}

    def split(qs: list[dict[str, Any]], who: str) -> dict[str, list[dict[str, int]]]:
        out: dict[str, list[dict[str, int]]] = {"start": [], "end": []}
        for q in qs:
            if q["condition"] != who:
                continue
            if q["day"] == 0:
                out["start"].append(q["answers"])
            elif q["day"] == last_day[q["run"]]:
                out["end"].append(q["answers"])
        return out

    baseline_runs = [q for (c, _), qs in answers.items() if c == "baseline" for q in qs]
    reference = "baseline runs" if baseline_runs else "non-holders"
    cells = []
    for (condition, prevalence), qs in sorted(answers.items(), key=_order):
        if condition == "baseline":
            continue
        held, ref = split(qs, condition), split(baseline_runs or qs, "baseline")
        cell: dict[str, Any] = {"condition": condition, "prevalence": prevalence,
                                "n_start": len(held["start"]), "n_end": len(held["end"])}
        for when in ("start", "end"):
            cell[when] = (orientation_change(held[when], ref[when])
                          if held[when] and ref[when] else {})
        cell["change"] = ({v: cell["end"][v] - cell["start"][v] for v in cell["end"]}
                          if cell["start"] and cell["end"] else {})
        cells.append(cell)
    return {"reference": reference, "cells": cells}


def _reason(err: BaseException) -> str:
    """One line saying why a run folder could not be read (the error names the file)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__


def _orientation_lines(found: dict[str, Any]) -> list[str]:
    """The value-orientation change table of ``orientation_changes`` (nothing when no run
    has questionnaire answers)."""
    if not found["cells"]:
        return []
    values = list(next(
        (c["end"] or c["start"] for c in found["cells"] if c["end"] or c["start"]), {}))
    lines = ["## Value-orientation change (manipulation check)", "",
             "LLM residents answered the value questionnaire (two items per value, rated 1-6) "
             "before their first action (day 0) and on the run's last day (survivors only). "
             "Each entry is the holders' mean rating minus the reference's, divided by 5 (the "
             "scale's range): +1 is the largest possible rise. *Change* is the end minus the "
             f"start, less the reference's. Reference: {found['reference']}. The first "
             "columns give the condition's own value; then every value on the last day. With "
             "greedy decoding, holders of one condition see the same day-0 prompt and give "
             "the same answer: the day-0 count is not a count of independent samples.", "",
             "| condition | prevalence | holders (day 0, last) | own value, day 0 | "
             "own value, last day | own value, change | " + " | ".join(values) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(values)]

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:+.2f}"

    for c in found["cells"]:
        own = c["condition"].split(":", 1)[-1]
        lines.append(f"| {c['condition']} | {c['prevalence']:g} | {c['n_start']}, "
                     f"{c['n_end']} | {fmt(c['start'].get(own))} | {fmt(c['end'].get(own))} | "
                     f"{fmt(c['change'].get(own))} | "
                     + " | ".join(fmt(c["end"].get(v)) for v in values) + " |")
    return [*lines, ""]


def _run_pages(sweep_dir: Path, rows: list[dict[str, Any]],
               skipped: dict[str, str]) -> dict[str, Path | str]:
    """Each run's page (built into its run folder when missing), or why there is none:
    {run id: page path or a note}. A page that cannot be built adds its run folder to
    ``skipped``."""
    viewer = _viewer()
    links: dict[str, Path | str] = {}
    for row in rows:
        # A prevalence-0 cell that shares its seed's baseline-world run links to that run.
        folder = row.get("same_as") or row["run_id"]
        run_dir = sweep_dir / "runs" / folder
        page = run_dir / "view.html"
        if viewer is not None and run_dir.is_dir() and not page.exists():
            try:
                page = Path(viewer.build_page(run_dir))
            except UNREADABLE as err:
                skipped.setdefault(folder, _reason(err))
        links[row["run_id"]] = (
            page if page.exists()
            else "(no page: civa_env.viewer not installed)" if viewer is None
            else "(no page: skipped, see report.md)" if folder in skipped else "")
    return links


def _write_runs_index(out: Path, rows: list[dict[str, Any]],
                      links: dict[str, Path | str]) -> None:
    lines = ["# Runs", "", "| run | condition | prevalence | seed | nAUP | SC | ED | page |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        page = links.get(row["run_id"], "")
        link = f"[view]({_relative(page, out)})" if isinstance(page, Path) else page
        same = f" (same run as {row['same_as']})" if row.get("same_as") else ""
        lines.append(f"| {row['run_id']}{same} | {row['condition']} | {row['prevalence']:g} | "
                     f"{row['seed']} | {row['nAUP']:.2f} | {row['SC']:.2f} | {row['ED']:.2f} | "
                     f"{link} |")
    (out / "runs.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start).replace(os.sep, "/")
