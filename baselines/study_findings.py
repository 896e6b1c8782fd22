"""The study's findings checked with scripted residents: resilience margins, holder-count sweeps.

    bash baselines/reproduce_study.sh          # the runs (about 1.5 h on 2 busy cores)
    python baselines/study_findings.py --resilience runs/study/res_p1 \\
        --resilience-half runs/study/res_p05 --holders runs/study/holders \\
        --out baselines/results/study

Reads the folders ``civa resilience`` and ``civa sweep --holders`` wrote (and the holder
sweep's ``civa report``), copies their tables and plots into ``--out`` and writes
``FINDINGS.md``: for each finding of the source study (arXiv 2604.05339), what CIVA's
scripted residents give, with 95% intervals (seed bootstraps, paired over shared seeds), and
whether it reproduces. Nothing here tunes rules or tendencies: the figures are what the
simulation gives.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def num(x: str | None) -> float:
    try:
        return float(x) if x not in (None, "") else float("nan")
    except ValueError:
        return float("nan")


def paired(rows: list[dict[str, str]], condition: str, metric: str, k_hi: int,
           k_lo: int = 0, seed: int = 0) -> dict[str, float]:
    """Mean over seeds of (metric at k_hi holders - at k_lo), with a seed bootstrap."""
    by = {(int(r["seed"]), int(r["holders"])): num(r[metric]) for r in rows
          if r["condition"] == condition}
    seeds = sorted({s for s, _ in by})
    d = np.array([by[(s, k_hi)] - by[(s, k_lo)] for s in seeds
                  if (s, k_hi) in by and (s, k_lo) in by])
    d = d[np.isfinite(d)]
    if not len(d):
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0,
                "at_hi": float("nan"), "at_lo": float("nan")}
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(len(d), size=(N_BOOT, len(d)))].mean(axis=1)
    a = (1 - LEVEL) / 2
    hi_vals = [by[(s, k_hi)] for s in seeds if (s, k_hi) in by]
    lo_vals = [by[(s, k_lo)] for s in seeds if (s, k_lo) in by]
    return {"diff": float(d.mean()), "lo": float(np.quantile(boot, a)),
            "hi": float(np.quantile(boot, 1 - a)), "n": len(d),
            "at_hi": float(np.nanmean(hi_vals)), "at_lo": float(np.nanmean(lo_vals))}


def fmt(e: dict[str, float], digits: int = 3) -> str:
    return (f"{e['diff']:+.{digits}f} [{e['lo']:+.{digits}f}, {e['hi']:+.{digits}f}] "
            f"(n={e['n']})")


def clear(e: dict[str, float]) -> int:
    """+1 / -1 when the interval excludes 0 above / below, else 0."""
    if e["lo"] > 0:
        return 1
    if e["hi"] < 0:
        return -1
    return 0


def margin(rows: list[dict[str, str]], condition: str) -> dict[str, Any] | None:
    for r in rows:
        if r["condition"] == condition:
            return r
    return None


def dfb(r: dict[str, str] | None) -> str:
    if r is None:
        return "not run"
    if r.get("status") not in ("ok", None, ""):
        return f"undefined ({r['status']})"
    return f"{num(r['d_FB']):.1f} [{num(r['d_FB_low']):.1f}, {num(r['d_FB_high']):.1f}]"


def dfb_diff(r: dict[str, str] | None) -> str:
    if r is None or r.get("d_FB_diff", "") == "":
        return "-"
    return (f"{num(r['d_FB_diff']):+.1f} [{num(r['d_FB_diff_low']):+.1f}, "
            f"{num(r['d_FB_diff_high']):+.1f}]")


def threshold_rows(rows: list[dict[str, str]], condition: str) -> list[dict[str, str]]:
    return [r for r in rows if r["condition"] == condition]


def findings(res: list[dict[str, str]], half: list[dict[str, str]],
             holders: list[dict[str, str]], thresholds: list[dict[str, str]],
             n_agents: int) -> list[str]:
    """The findings page's lines."""
    top = n_agents
    out = ["# The study's findings with CIVA's scripted residents", "",
           "Source: arXiv 2604.05339 (\"Human Values Matter\"). CIVA's residents here are the "
           "scripted policy (`docs/scripted.md`), not LLMs: the value condition changes their "
           "tendencies as documented there, and the world's rules are the same for every "
           "condition (paired worlds: one seed is one world in every cell). Intervals are 95% "
           "seed bootstraps; differences are paired over shared seeds. *Reproduces* means the "
           "interval excludes no effect in the study's direction. Commands and run times: "
           "`baselines/reproduce_study.sh`; tables: `resilience.csv`, `thresholds.csv`, "
           "`holders_report/report.md` in this folder.", ""]

    # 1. Benevolence removal collapses the community.
    ben = {m: paired(holders, "without:benevolence", m, top)
           for m in ("nAUP", "final_population", "collapsed")}
    r_ben, r_base = margin(res, "without:benevolence"), margin(res, "baseline")
    # Collapse: more likely than not over 120 days, or a margin whose interval reaches 0
    # (collapse more likely than not at today's cost of living) and clearly below baseline.
    margin_gone = (r_ben is not None and num(r_ben.get("d_FB_low")) <= 0
                   and num(r_ben.get("d_FB_diff_high")) < 0)
    collapses = clear(ben["collapsed"]) > 0 or margin_gone
    verdict = ("reproduces" if clear(ben["nAUP"]) < 0 and collapses else
               "partly: it lowers nAUP, but collapse is not clearly more likely"
               if clear(ben["nAUP"]) < 0 else "does not reproduce")
    out += ["## 1. Removing benevolence collapses the community", "",
            f"**{verdict}.** All {top} founders `without:benevolence` against none "
            f"(120 days): nAUP {fmt(ben['nAUP'])} (from {ben['nAUP']['at_lo']:.2f} to "
            f"{ben['nAUP']['at_hi']:.2f}), final population {fmt(ben['final_population'], 1)}, "
            f"collapse (population below 20% of the founders at day 120) "
            f"{fmt(ben['collapsed'], 2)}. Resilience margin d_FB: without benevolence "
            f"{dfb(r_ben)} against baseline {dfb(r_base)}; paired difference "
            f"{dfb_diff(r_ben)} (a margin at or below 0: collapse more likely than not "
            "within 60 days at today's cost of living).", ""]

    # 2. Power breeds betrayal and deception.
    pw = {m: paired(holders, "with:power", m, top)
          for m in ("betrayal_rate", "deception_rate", "nAUP")}
    ok = clear(pw["betrayal_rate"]) > 0 and clear(pw["deception_rate"]) > 0
    verdict = "reproduces" if ok else (
        "partly" if clear(pw["betrayal_rate"]) > 0 or clear(pw["deception_rate"]) > 0
        else "does not reproduce")
    out += ["## 2. Power breeds betrayal and deception", "",
            f"**{verdict}.** All founders `with:power` against none: betrayal per "
            f"resident-day {fmt(pw['betrayal_rate'], 4)}, deception per resident-day "
            f"{fmt(pw['deception_rate'], 4)}, nAUP {fmt(pw['nAUP'])}. Deception counts a "
            "friendly message addressed to the victim before an attack (README, Metrics).",
            ""]

    # 3. Thresholds near 25 / 50 / 75 % prevalence.
    out += ["## 3. Effects jump at thresholds of prevalence", "",
            "The study reports jumps near 25% (without benevolence), 75% (with power) and 50% "
            "for most values. CIVA tests, for every condition and response, a step along the "
            "number of founding holders against a smooth quadratic (seed bootstrap, Holm across "
            "conditions; `thresholds.csv`).", "",
            "| condition | response | p (Holm) | threshold, holders [95%] | as prevalence |",
            "|---|---|---:|---|---|"]
    significant = []
    for cond in ("without:benevolence", "with:power"):
        for t in threshold_rows(thresholds, cond):
            out.append(_threshold_row(t, n_agents))
    for t in thresholds:
        if num(t.get("p_holm")) < 0.05:
            significant.append(t)
    out += ["", f"Steps clearly better than a smooth curve (Holm p < 0.05): "
            f"{len(significant)} of {len(thresholds)} condition-response pairs"
            + (": " + "; ".join(f"{t['condition']} {t['response']} at "
                                f"{num(t['threshold_prevalence']):.0%}"
                                for t in significant) if significant else "")
            + ".", ""]
    out.append(_threshold_verdict(thresholds))
    out.append("")

    # 4. Tradition suppresses growth.
    tr = {m: paired(holders, "with:tradition", m, top)
          for m in ("final_population", "nAUP")}
    verdict = "reproduces" if clear(tr["final_population"]) < 0 else "does not reproduce"
    out += ["## 4. Tradition suppresses growth", "",
            f"**{verdict}.** All founders `with:tradition` against none: final population "
            f"{fmt(tr['final_population'], 1)} (from {tr['final_population']['at_lo']:.1f} to "
            f"{tr['final_population']['at_hi']:.1f}; {top} at the start), nAUP "
            f"{fmt(tr['nAUP'])}.", ""]

    # 5. The d_FB ordering.
    names = ["baseline", "without:power", "without:benevolence", "without:tradition"]
    vals = {c: margin(res, c) for c in names}
    half_vals = {c: margin(half, c) for c in names[1:]}
    out += ["## 5. Values move the distance to collapse", "",
            "The study: d_FB baseline 19.0 > without power 11.2 > without benevolence 5.4, and "
            "without tradition 21.4 the most robust. CIVA (upkeep stressor from day 31, "
            "60 more days, collapse below 20% of the founders; `resilience.csv`):", "",
            "| condition | d_FB at prevalence 1 [95%] | paired difference to baseline | "
            "d_FB at prevalence 0.5 |", "|---|---|---|---|"]
    for c in names:
        out.append(f"| {c} | {dfb(vals[c])} | {dfb_diff(vals[c]) if c != 'baseline' else '-'}"
                   f" | {dfb(half_vals.get(c)) if c != 'baseline' else '-'} |")
    out += ["", _ordering_verdict(vals), ""]
    out += ["## Every condition's margin at prevalence 1", "",
            "| condition | d_FB [95%] | paired difference to baseline | mu* | reading |",
            "|---|---|---|---|---|"]
    for r in res:
        out.append(f"| {r['condition']} | {dfb(r)} | {dfb_diff(r)} | "
                   f"{num(r['mu_star']):.2f} | {r.get('reading', '')} |")
    return out + [""]


def _threshold_row(t: dict[str, str], n_agents: int) -> str:
    p = num(t.get("p_holm"))
    if not np.isfinite(p):
        return f"| {t['condition']} | {t['response']} | - | not tested | - |"
    return (f"| {t['condition']} | {t['response']} | {p:.3f} | {num(t['threshold']):.0f} "
            f"[{num(t['threshold_low']):.0f}, {num(t['threshold_high']):.0f}] | "
            f"{num(t['threshold_prevalence']):.0%} "
            f"[{num(t['threshold_prevalence_low']):.0%}, "
            f"{num(t['threshold_prevalence_high']):.0%}] |")


def _threshold_verdict(thresholds: list[dict[str, str]]) -> str:
    def near(cond: str, target: float) -> bool:
        for t in thresholds:
            if t["condition"] == cond and num(t.get("p_holm")) < 0.05:
                lo, hi = num(t["threshold_prevalence_low"]), num(t["threshold_prevalence_high"])
                if lo - 0.05 <= target <= hi + 0.05:
                    return True
        return False

    ben, pw = near("without:benevolence", 0.25), near("with:power", 0.75)
    half = sum(near(t["condition"], 0.5) for t in {t["condition"]: t for t in thresholds}
               .values())
    parts = [f"without benevolence near 25%: {'yes' if ben else 'no'}",
             f"with power near 75%: {'yes' if pw else 'no'}",
             f"conditions with a clear step whose interval includes 50%: {half}"]
    verdict = ("reproduces" if ben and pw else "partly" if ben or pw or half
               else "does not reproduce")
    return f"**{verdict}** ({'; '.join(parts)})."


def _ordering_verdict(vals: dict[str, dict[str, str] | None]) -> str:
    d = {c: num(r["d_FB"]) if r is not None else float("nan") for c, r in vals.items()}
    if not all(np.isfinite(list(d.values()))):
        return "**Cannot be judged**: some margins are undefined (see the table)."
    order = sorted(d, key=lambda c: -d[c])
    study = ["without:tradition", "baseline", "without:power", "without:benevolence"]
    same = order == study
    return (f"**{'reproduces' if same else 'does not reproduce'}** the study's ordering "
            f"(CIVA, most robust first: {', '.join(order)}; the study: {', '.join(study)}). "
            "Orderings within overlapping intervals are not established.")


def main() -> None:
    """Copy the tables and write FINDINGS.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resilience", type=Path, required=True)
    p.add_argument("--resilience-half", type=Path, required=True)
    p.add_argument("--holders", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("baselines/results/study"))
    p.add_argument("--agents", type=int, default=25)
    args = p.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for src, name in [(args.resilience / "resilience.csv", "resilience.csv"),
                      (args.resilience / "resilience.md", "resilience.md"),
                      (args.resilience / "diagnostics.csv", "diagnostics.csv"),
                      (args.resilience / "collapse_vs_stress.png", "collapse_vs_stress.png"),
                      (args.resilience_half / "resilience.csv", "resilience_half.csv"),
                      (args.resilience_half / "resilience.md", "resilience_half.md"),
                      (args.resilience_half / "collapse_vs_stress.png",
                       "collapse_vs_stress_half.png"),
                      (args.holders / "results.csv", "holders_results.csv"),
                      (args.holders / "report" / "thresholds.csv", "thresholds.csv"),
                      (args.holders / "report" / "thresholds.png", "thresholds.png")]:
        if src.exists():
            shutil.copyfile(src, out / name)
    # The holder sweep's whole report (report.md and its figures; no run pages).
    shutil.copytree(args.holders / "report", out / "holders_report", dirs_exist_ok=True)
    res = read_csv(args.resilience / "resilience.csv")
    half = read_csv(args.resilience_half / "resilience.csv")
    holders = read_csv(args.holders / "results.csv")
    thresholds = read_csv(args.holders / "report" / "thresholds.csv")
    lines = findings(res, half, holders, thresholds, args.agents)
    (out / "FINDINGS.md").write_text("\n".join(lines), encoding="utf-8")
    print(out / "FINDINGS.md")


if __name__ == "__main__":
    main()
