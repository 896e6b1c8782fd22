"""PNG plots of a run and of a sweep (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_dir: Path, summary: Mapping[str, Any]) -> list[Path]:
    """Population, wealth and Gini, and actions per day of one run, as PNGs in ``run_dir``."""
    plt = _pyplot()
    run_dir = Path(run_dir)
    days = np.arange(1, summary["days"] + 1)
    out = []

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(days, summary["population"][: len(days)], color="tab:blue")
    ax.set(xlabel="day", ylabel="living residents",
           title=f"Population (nAUP {summary['nAUP']:.2f})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    out.append(_save(fig, run_dir / "population.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(days, summary["wealth_mean"], color="tab:green", label="mean wealth")
    ax.set(xlabel="day", ylabel="mean wealth of the living", title="Wealth and inequality")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(days, summary["gini"], color="tab:red", label="Gini")
    ax2.set_ylabel("Gini")
    ax2.set_ylim(0, 1)
    fig.legend(loc="upper right", fontsize="small")
    out.append(_save(fig, run_dir / "wealth.png"))

    kinds = sorted({k for day in summary["actions"] for k in day})
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bottom = np.zeros(len(days))
    for kind in kinds:
        counts = np.array([day.get(kind, 0) for day in summary["actions"]], dtype=float)
        ax.bar(days, counts, bottom=bottom, label=kind, width=0.9)
        bottom += counts
    ax.set(xlabel="day", ylabel="actions", title="Actions per day")
    if kinds:
        ax.legend(fontsize="x-small", ncol=2, loc="upper right")
    out.append(_save(fig, run_dir / "actions.png"))
    return out


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def plot_metric_vs_prevalence(stats: Sequence[Mapping[str, Any]], metric: str,
                              path: Path, baseline: Mapping[str, Any] | None = None) -> Path:
    """One panel per value: ``with`` and ``without`` lines of ``metric`` (mean, 95% CI band)
    against prevalence; the baseline mean and interval as a grey band.

    Args:
        stats: rows with condition, prevalence, and ``{metric}_mean/_lo/_hi``.
        metric: metric name.
        path: PNG to write.
        baseline: the baseline row, if any.
    """
    plt = _pyplot()
    values = sorted({r["condition"].split(":", 1)[1] for r in stats if ":" in r["condition"]})
    if not values:
        values = ["baseline"]
    cols = min(5, len(values))
    rows = int(np.ceil(len(values) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharey=True,
                             squeeze=False)
    for ax, value in zip(axes.ravel(), values, strict=False):
        for head, color in (("with", "tab:blue"), ("without", "tab:red")):
            sel = sorted((r for r in stats if r["condition"] == f"{head}:{value}"),
                         key=lambda r: r["prevalence"])
            if not sel:
                continue
            x = [r["prevalence"] for r in sel]
            ax.plot(x, [r[f"{metric}_mean"] for r in sel], "o-", color=color, label=head,
                    markersize=3)
            ax.fill_between(x, [r[f"{metric}_lo"] for r in sel],
                            [r[f"{metric}_hi"] for r in sel], color=color, alpha=0.2)
        if baseline is not None:
            ax.axhspan(baseline[f"{metric}_lo"], baseline[f"{metric}_hi"], color="grey",
                       alpha=0.2)
            ax.axhline(baseline[f"{metric}_mean"], color="grey", lw=1, label="baseline")
        ax.set_title(value, fontsize="small")
        ax.set_xlabel("prevalence", fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(values):]:
        ax.axis("off")
    axes[0, 0].set_ylabel(metric)
    axes[0, 0].legend(fontsize="x-small")
    fig.suptitle(f"{metric} against prevalence (mean, 95% bootstrap interval)")
    return _save(fig, path)


def plot_population_curves(curves: Mapping[str, Sequence[float]], path: Path,
                           title: str = "Population per condition (mean over runs)") -> Path:
    """Mean population series, one line per label (condition, or condition @ prevalence)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    cmap = plt.get_cmap("tab20")
    for k, (label, series) in enumerate(curves.items()):
        series = np.asarray(series, dtype=float)
        style = "-" if not label.startswith("without") else "--"
        color = "black" if label.startswith("baseline") else cmap(k % 20)
        ax.plot(np.arange(1, len(series) + 1), series, style, color=color, label=label, lw=1.2)
    ax.set(xlabel="day", ylabel="living residents", title=title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="xx-small", ncol=2 if len(curves) > 8 else 1, loc="best")
    return _save(fig, path)


def plot_thresholds(panels: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """One row per condition, one panel per response: the runs (grey), the mean per number
    of holders with its seed spread (one standard deviation), the fitted step with the span
    its threshold interval allows the jump (shaded), and the quadratic null.

    Args:
        panels: dicts with condition, response, x and y (the runs), levels, mean and sd (per
            k), quadratic (coefficients for ``np.polyval``, or None), step ((the level
            before the jump, the threshold, the span of the jump's interval from and to,
            below, above), or None) and p_holm.
        path: PNG to write.
    """
    plt = _pyplot()
    conditions = list(dict.fromkeys(p["condition"] for p in panels))
    responses = list(dict.fromkeys(p["response"] for p in panels))
    fig, axes = plt.subplots(len(conditions), len(responses),
                             figsize=(3.4 * len(responses), 2.5 * len(conditions)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for panel in panels:
        ax = axes[conditions.index(panel["condition"]), responses.index(panel["response"])]
        ax.axis("on")
        ax.plot(panel["x"], panel["y"], ".", color="grey", alpha=0.35, markersize=3)
        ax.errorbar(panel["levels"], panel["mean"], yerr=panel["sd"], fmt="o-",
                    color="tab:blue", markersize=3, lw=1, capsize=2, label="mean, sd")
        lo, hi = float(np.min(panel["x"])), float(np.max(panel["x"]))
        if panel["quadratic"] is not None:
            grid = np.linspace(lo, hi, 100)
            ax.plot(grid, np.polyval(panel["quadratic"], grid), "--", color="tab:green",
                    lw=1.2, label="quadratic")
        title = f"{panel['condition']}: {panel['response']}"
        if panel["step"] is not None:
            before, threshold, t_lo, t_hi, below, above = panel["step"]
            jump = (before + threshold) / 2
            ax.plot([lo, jump, jump, hi], [below, below, above, above], "-",
                    color="tab:red", lw=1.5, label="step")
            ax.axvspan(t_lo, t_hi, color="tab:red", alpha=0.12, label="threshold interval")
            title += f" (p Holm {panel['p_holm']:.3f})"
        else:
            title += " (not tested)"
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("founding holders k", fontsize="small")
        ax.grid(alpha=0.3)
    first = panels[0]
    axes[conditions.index(first["condition"]), responses.index(first["response"])].legend(
        fontsize="x-small")
    fig.suptitle("Responses along holders: step against quadratic")
    return _save(fig, path)
