"""Figures of a run and of a sweep (matplotlib, Agg backend, imported lazily).

Every figure is drawn in the project's style (``civa_env.style``: one palette shared with
the viewer, fonts and lines sized for print), at one of two widths: ``COLUMN_WIDTH`` (a
paper column, 3.4 in) or ``PAGE_WIDTH`` (a page, 7 in). Each is written in every format of
``output_formats`` (default ``DEFAULT_FORMATS``: a 200 dpi PNG and a vector PDF, with
embedded TrueType fonts), next to each other: ``population.png``, ``population.pdf``.
Legends stand outside the data, and a legend of several panels holds the entries of all of
them. Intervals are shaded bands; axis labels carry their units.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from civa_env import style

FORMATS = ("png", "pdf", "svg")
DEFAULT_FORMATS = ("png", "pdf")
_FORMATS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "civa_plot_formats", default=DEFAULT_FORMATS)
# Files that do not change from one run to the next (no creation date in them).
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}

# Axis labels with units, by metric or response.
AXIS_LABELS = {
    "nAUP": "nAUP (1 = founders kept)",
    "SC": "SC (social capital, -1 to 1)",
    "ED": "ED (1 - Gini of wealth)",
    "IC": "IC (share of living)",
    "CC": "CC (output per resident-day)",
    "final_population": "final population (residents)",
    "collapsed": "P(collapse)",
}
PREVALENCE_LABEL = "prevalence (share)"  # of the founders holding the condition

F = TypeVar("F", bound=Callable[..., Any])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,pdf"`` -> ``("png", "pdf")``: known formats, each once, in the order given.

    Raises:
        ValueError: an unknown or empty list.
    """
    out = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in text.split(",")
                              if f.strip()))
    unknown = [f for f in out if f not in FORMATS]
    if unknown or not out:
        raise ValueError(f"figure formats: expected a comma-separated list of "
                         f"{', '.join(FORMATS)} (e.g. png,pdf), got {text!r}")
    return out


def current_formats() -> tuple[str, ...]:
    """The formats figures are written in now (see ``output_formats``)."""
    return _FORMATS.get()


@contextlib.contextmanager
def output_formats(formats: Sequence[str] | None) -> Iterator[tuple[str, ...]]:
    """Inside the block, figures are written in ``formats`` (None: leave them as they are).

    ``civa run --format`` and ``civa report --format`` set it around the run and the report.
    """
    if formats is None:
        yield current_formats()
        return
    chosen = parse_formats(",".join(formats))
    token = _FORMATS.set(chosen)
    try:
        yield chosen
    finally:
        _FORMATS.reset(token)


def figure_markdown(name: str) -> str:
    """How report.md shows figure ``name`` (a file name of any format, or a stem): the PNG
    as an image when one is written, and a link to each other format; a paragraph of its
    own (the text ends with a newline)."""
    stem = Path(name).stem
    formats = current_formats()
    links = [f"[{fmt.upper()}]({stem}.{fmt})" for fmt in formats if fmt != "png"]
    text = f"![{stem}]({stem}.png)" if "png" in formats else f"**{stem}**"
    return text + (f" ({', '.join(links)})" if links else "") + "\n"


def _styled(fn: F) -> F:
    """Run a plotting function inside the project's matplotlib style."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _pyplot().rc_context(style.MPL_STYLE):
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


def _paths(path: Path, formats: Sequence[str] | None) -> list[Path]:
    formats = parse_formats(",".join(formats)) if formats is not None else current_formats()
    path = Path(path)
    return [path.with_suffix("." + fmt) for fmt in formats]


@_styled
def save_figure(fig: Any, path: Path, formats: Sequence[str] | None = None) -> list[Path]:
    """Write ``fig`` in each format (``path``'s suffix is replaced), close it, return the
    files (the first format first)."""
    out = _paths(path, formats)
    try:
        for k, target in enumerate(out):
            fmt = target.suffix[1:]
            fig.savefig(target, format=fmt, dpi=style.PNG_DPI, metadata=_METADATA[fmt])
            if k == 0:  # laid out once: the other formats keep the same positions
                fig.set_layout_engine("none")
    finally:
        _pyplot().close(fig)
    return out


def _save(fig: Any, path: Path, formats: Sequence[str] | None = None) -> Path:
    return save_figure(fig, path, formats)[0]


def _union_legend(fig: Any, axes: Sequence[Any], ncol: int | None = None,
                  loc: str = "outside lower center", last: str | None = None) -> Any:
    """One figure legend below (or beside) the panels with every label of every panel, in
    the order first drawn (labels starting with ``last`` at the end)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                entries.setdefault(label, handle)
    if not entries:
        return None
    if last is not None:
        entries = dict(sorted(entries.items(), key=lambda e: e[0].startswith(last)))
    if ncol is None:
        ncol = min(4, len(entries))
    return fig.legend(list(entries.values()), list(entries), loc=loc, ncol=ncol)


def _integer_days(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
    ax.set_xlabel("day")


# ---- a run ----------------------------------------------------------------------------------
def run_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one run, by file stem: population, wealth (and Gini), actions."""
    return {"population": population_figure(summary), "wealth": wealth_figure(summary),
            "actions": actions_figure(summary)}


@_styled
def plot_run(run_dir: Path, summary: Mapping[str, Any],
             formats: Sequence[str] | None = None) -> list[Path]:
    """Population, wealth and Gini, and actions per day of one run, in ``run_dir``; returns
    every file written (each figure in each format)."""
    run_dir = Path(run_dir)
    out: list[Path] = []
    for stem, fig in run_figures(summary).items():
        out += save_figure(fig, run_dir / f"{stem}.png", formats)
    return out


def _days(summary: Mapping[str, Any]) -> np.ndarray:
    return np.arange(1, int(summary["days"]) + 1)


@_styled
def population_figure(summary: Mapping[str, Any]) -> Any:
    """Living residents per day (column width)."""
    plt = _pyplot()
    days = _days(summary)
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH, 2.3), layout="constrained")
    ax.plot(days, summary["population"][: len(days)], color=style.SERIES_COLOURS["population"])
    ax.set(ylabel="living residents (count)", title=f"Population (nAUP {summary['nAUP']:.2f})")
    ax.set_ylim(bottom=0)
    _integer_days(ax)
    return fig


@_styled
def wealth_figure(summary: Mapping[str, Any]) -> Any:
    """Mean wealth of the living (left axis) and the Gini coefficient (right axis), with the
    legend below the axes (column width)."""
    plt = _pyplot()
    days = _days(summary)
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH, 2.6), layout="constrained")
    colours = style.SERIES_COLOURS
    ax.plot(days, summary["wealth_mean"][: len(days)], color=colours["wealth_mean"],
            label="mean wealth")
    ax.set(ylabel="mean wealth (resource units)", title="Wealth and inequality")
    ax.set_ylim(bottom=0)
    _integer_days(ax)
    ax2 = ax.twinx()
    ax2.spines["right"].set_visible(True)
    ax2.grid(False)
    ax2.plot(days, summary["gini"][: len(days)], color=colours["gini"], label="Gini")
    ax2.set_ylabel("Gini of wealth (0 to 1)")
    ax2.set_ylim(0, 1)
    _union_legend(fig, [ax, ax2], ncol=2)
    return fig


@_styled
def actions_figure(summary: Mapping[str, Any]) -> Any:
    """Actions per day stacked by kind, in the viewer's colours, the legend to the right of
    the axes (page width)."""
    plt = _pyplot()
    days = _days(summary)
    seen = {k for day in summary["actions"] for k in day}
    order = list(style.ACTION_COLOURS)
    kinds = [k for k in order if k in seen] + sorted(seen - set(order))
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH, 2.6), layout="constrained")
    bottom = np.zeros(len(days))
    for kind in kinds:
        counts = np.array([day.get(kind, 0) for day in summary["actions"]][: len(days)],
                          dtype=float)
        ax.bar(days[: len(counts)], counts, bottom=bottom[: len(counts)], width=0.85,
               label=kind.replace("_", " "),
               color=style.ACTION_COLOURS.get(kind, style.OTHER_POLICY_COLOUR))
        bottom[: len(counts)] += counts
    ax.set(ylabel="actions (count per day)", title="Actions per day")
    ax.set_xlim(0.4, len(days) + 0.6)
    ax.grid(axis="x", visible=False)
    _integer_days(ax)
    if kinds:
        _union_legend(fig, [ax], ncol=1, loc="outside right upper")
    return fig


# ---- a sweep ----------------------------------------------------------------------------------
def _condition_style(condition: str) -> dict[str, Any]:
    """Line colour and style of a condition: its palette colour; ``without:`` dashed with
    open markers."""
    colour = style.condition_colour(condition)
    if condition.startswith("without"):
        return {"color": colour, "ls": "--", "marker": "o", "mfc": "white"}
    return {"color": colour, "ls": "-", "marker": "o"}


def _value_of(condition: str) -> str:
    return condition.split(":", 1)[1] if ":" in condition else condition


@_styled
def metric_vs_prevalence_figure(stats: Sequence[Mapping[str, Any]], metric: str,
                                baseline: Mapping[str, Any] | None = None) -> Any:
    """One panel per value: each condition's mean of ``metric`` against prevalence with its
    95% interval shaded, the baseline mean and interval as a grey band; one legend below with
    every condition of every panel (page width). See ``plot_metric_vs_prevalence``."""
    plt = _pyplot()
    values = sorted({_value_of(r["condition"]) for r in stats if ":" in r["condition"]})
    if not values:
        values = ["baseline"]
    cols = min(5, len(values))
    rows = int(np.ceil(len(values) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(style.PAGE_WIDTH, 0.6 + 1.8 * rows),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, value in zip(axes.ravel(), values, strict=False):
        for head in ("with", "without"):
            condition = f"{head}:{value}"
            sel = sorted((r for r in stats if r["condition"] == condition),
                         key=lambda r: r["prevalence"])
            if not sel:
                continue
            x = [r["prevalence"] for r in sel]
            line_style = _condition_style(condition)
            ax.fill_between(x, [r[f"{metric}_lo"] for r in sel],
                            [r[f"{metric}_hi"] for r in sel], color=line_style["color"],
                            alpha=0.2, lw=0)
            ax.plot(x, [r[f"{metric}_mean"] for r in sel], label=condition,
                    lw=1.5 if head == "without" else 1.2, **line_style)
        if baseline is not None:
            colour = style.SERIES_COLOURS["baseline"]
            ax.axhspan(baseline[f"{metric}_lo"], baseline[f"{metric}_hi"], color=colour,
                       alpha=0.15, lw=0)
            ax.axhline(baseline[f"{metric}_mean"], color=colour, lw=1,
                       label="baseline (band: 95% interval)")
        ax.set_title(value)
    for ax in axes.ravel()[len(values):]:
        ax.axis("off")
    fig.supylabel(AXIS_LABELS.get(metric, _rate_label(metric)), fontsize="medium")
    for ax in axes.ravel()[max(0, len(values) - cols):len(values)]:
        ax.set_xlabel(PREVALENCE_LABEL)
    _union_legend(fig, axes.ravel()[:len(values)], last="baseline")
    fig.suptitle(f"{metric.replace('_', ' ')} against prevalence "
                 "(mean, shaded: 95% bootstrap interval)")
    return fig


def _rate_label(metric: str) -> str:
    if metric.endswith("_rate"):
        return f"{metric[:-5].replace('_', '-')} (per resident-day)"
    return metric


def _wrapped(label: str, width: int = 22) -> str:
    """A long axis label on two lines, broken before its unit in parentheses."""
    if len(label) <= width or " (" not in label:
        return label
    head, _, unit = label.partition(" (")
    return f"{head}\n({unit}"


def plot_metric_vs_prevalence(stats: Sequence[Mapping[str, Any]], metric: str,
                              path: Path, baseline: Mapping[str, Any] | None = None,
                              formats: Sequence[str] | None = None) -> Path:
    """One panel per value: ``with`` and ``without`` lines of ``metric`` (mean, 95% CI band)
    against prevalence; the baseline mean and interval as a grey band.

    Args:
        stats: rows with condition, prevalence, and ``{metric}_mean/_lo/_hi``.
        metric: metric name.
        path: the figure's file (its suffix is replaced by each format's).
        baseline: the baseline row, if any.
        formats: file formats (default ``current_formats()``).

    Returns:
        The file of the first format.
    """
    return _save(metric_vs_prevalence_figure(stats, metric, baseline), path, formats)


@_styled
def population_curves_figure(curves: Mapping[str, Sequence[float]],
                             title: str = "Population per condition (mean over runs)") -> Any:
    """Mean population series, one line per label in its condition's colour (``without``
    dashed), the legend to the right (page width)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH, 3.0), layout="constrained")
    for label, series in curves.items():
        series = np.asarray(series, dtype=float)
        condition = label.split(" ", 1)[0]
        baseline = condition == "baseline"
        ax.plot(np.arange(1, len(series) + 1), series,
                "--" if condition.startswith("without") else "-",
                color=style.SERIES_COLOURS["baseline"] if baseline
                else style.condition_colour(condition),
                label=label, lw=1.8 if baseline else 1.2)
    ax.set(ylabel="living residents (mean count)", title=title)
    ax.set_ylim(bottom=0)
    _integer_days(ax)
    if curves:
        _union_legend(fig, [ax], ncol=2 if len(curves) > 12 else 1, loc="outside right upper")
    return fig


def plot_population_curves(curves: Mapping[str, Sequence[float]], path: Path,
                           title: str = "Population per condition (mean over runs)",
                           formats: Sequence[str] | None = None) -> Path:
    """Mean population series, one line per label (condition, or condition @ prevalence);
    returns the file of the first format."""
    return _save(population_curves_figure(curves, title), path, formats)


@_styled
def thresholds_figure(panels: Sequence[Mapping[str, Any]]) -> Any:
    """See ``plot_thresholds`` (page width, one legend below for all panels)."""
    plt = _pyplot()
    conditions = list(dict.fromkeys(p["condition"] for p in panels))
    responses = list(dict.fromkeys(p["response"] for p in panels))
    fig, axes = plt.subplots(len(conditions), len(responses),
                             figsize=(style.PAGE_WIDTH, 0.6 + 2.1 * len(conditions)),
                             squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    dark = style.SERIES_COLOURS["population"]
    for panel in panels:
        ax = axes[conditions.index(panel["condition"]), responses.index(panel["response"])]
        ax.axis("on")
        colour = style.condition_colour(panel["condition"])
        ax.plot(panel["x"], panel["y"], ".", color="grey", alpha=0.35, markersize=3,
                label="runs")
        mean, sd = np.asarray(panel["mean"], float), np.asarray(panel["sd"], float)
        ax.fill_between(panel["levels"], mean - sd, mean + sd, color=colour, alpha=0.2, lw=0)
        ax.plot(panel["levels"], mean, "o-", color=colour, markersize=3, lw=1,
                label="mean per k (shaded: 1 sd)")
        lo, hi = float(np.min(panel["x"])), float(np.max(panel["x"]))
        if panel["quadratic"] is not None:
            grid = np.linspace(lo, hi, 100)
            ax.plot(grid, np.polyval(panel["quadratic"], grid), ":", color=dark, lw=1.2,
                    label="quadratic (null)")
        title = f"{panel['condition']}\n{panel['response'].replace('_', ' ')}"
        if panel["step"] is not None:
            before, threshold, t_lo, t_hi, below, above = panel["step"]
            jump = (before + threshold) / 2
            ax.plot([lo, jump, jump, hi], [below, below, above, above], "-", color=dark,
                    lw=1.5, label="step")
            ax.axvspan(t_lo, t_hi, color=dark, alpha=0.1, lw=0,
                       label="threshold interval (95%)")
            title += f" (p Holm {panel['p_holm']:.3f})"
        else:
            title += " (not tested)"
        ax.set_title(title)
        ax.set_xlabel("founding holders k")
        ax.set_ylabel(_wrapped(AXIS_LABELS.get(panel["response"], panel["response"])))
    _union_legend(fig, axes.ravel(), ncol=5)
    fig.suptitle("Responses along holders: step against quadratic")
    return fig


def plot_thresholds(panels: Sequence[Mapping[str, Any]], path: Path,
                    formats: Sequence[str] | None = None) -> Path:
    """One row per condition, one panel per response: the runs (grey), the mean per number
    of holders with its seed spread (one standard deviation, shaded), the fitted step with
    the span its threshold interval allows the jump (shaded), and the quadratic null.

    Args:
        panels: dicts with condition, response, x and y (the runs), levels, mean and sd (per
            k), quadratic (coefficients for ``np.polyval``, or None), step ((the level
            before the jump, the threshold, the span of the jump's interval from and to,
            below, above), or None) and p_holm.
        path: the figure's file (its suffix is replaced by each format's).
        formats: file formats (default ``current_formats()``).

    Returns:
        The file of the first format.
    """
    return _save(thresholds_figure(panels), path, formats)
