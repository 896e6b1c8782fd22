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

A second arm (``bash baselines/reproduce_study_v2.sh``: residents with social memory,
``--policy scripted:v2``) is written with ``--arm scripted:v2 --compare baselines/results/study``:
the same page for that arm, what its runs cover, and a section that sets each finding of the
two arms side by side (the threshold tests of both rerun on the conditions, seeds and holder
counts they share, Holm across those conditions).
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
             n_agents: int, arm: str | None = None) -> list[str]:
    """The findings page's lines (``arm``: a policy spec other than plain ``scripted``)."""
    top = n_agents
    who = ("scripted policy (`docs/scripted.md`)" if arm is None else
           f"scripted policy `{arm}` (`docs/scripted.md`, residents with social memory)")
    out = ["# The study's findings with CIVA's scripted residents"
           + ("" if arm is None else f" (`{arm}`)"), "",
           "Source: arXiv 2604.05339 (\"Human Values Matter\"). CIVA's residents here are the "
           f"{who}, not LLMs: the value condition changes their "
           "tendencies as documented there, and the world's rules are the same for every "
           "condition (paired worlds: one seed is one world in every cell). Intervals are 95% "
           "seed bootstraps; differences are paired over shared seeds. *Reproduces* means the "
           "interval excludes no effect in the study's direction. Commands and run times: "
           f"`baselines/{'reproduce_study.sh' if arm is None else 'reproduce_study_v2.sh'}`; "
           "tables: `resilience.csv`, `thresholds.csv`, "
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


# ---- a second arm ---------------------------------------------------------------------------

def coverage(res: list[dict[str, str]], half: list[dict[str, str]],
             holders: list[dict[str, str]], diagnostics: bool) -> list[str]:
    """What this arm's runs cover (it may be smaller than the first arm's)."""
    def seeds(rows: list[dict[str, str]]) -> str:
        n = sorted({num(r.get("n_seeds")) for r in rows if r.get("n_seeds")})
        return "/".join(f"{x:.0f}" for x in n) or "?"

    conds = sorted({r["condition"] for r in holders})
    counts = sorted({int(r["holders"]) for r in holders})
    hold_seeds = sorted({int(r["seed"]) for r in holders})
    days = sorted({r["days"] for r in holders})
    return ["## What this arm's runs cover", "",
            f"- Resilience at prevalence 1: {len(res)} cells "
            f"({', '.join(r['condition'] for r in res)}), {seeds(res)} seeds each, "
            f"fold diagnostics {'run' if diagnostics else 'not run'}.",
            f"- Resilience at prevalence 0.5: {len(half)} cells "
            f"({', '.join(r['condition'] for r in half) or 'none'}), {seeds(half)} seeds each.",
            f"- Holder-count sweeps: {len(conds)} conditions ({', '.join(conds)}), holder counts "
            f"{', '.join(map(str, counts))}, seeds {', '.join(map(str, hold_seeds))}, "
            f"{'/'.join(days)} days ({len(holders)} runs).",
            "- Run times, what was cut and why: [RUNS.md](RUNS.md).", ""]


def _as_runs(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """results.csv rows with the types the threshold tests read."""
    out = []
    for r in rows:
        d: dict[str, Any] = dict(r)
        d["holders"], d["seed"], d["agents"] = int(r["holders"]), int(r["seed"]), int(r["agents"])
        for k in ("nAUP", "final_population", "collapsed"):
            d[k] = num(r.get(k))
        out.append(d)
    return out


def shared_thresholds(a: list[dict[str, str]], b: list[dict[str, str]],
                      ) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Threshold tests of two holder tables on what they share: the conditions, seeds and
    holder counts both ran (Holm across the shared conditions)."""
    from civa_env.experiments.thresholds import threshold_table

    def key(r):
        return (r["condition"], int(r["holders"]), int(r["seed"]))

    conds = sorted({r["condition"] for r in a} & {r["condition"] for r in b} - {"baseline"})

    def spread(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        """Baseline runs stand for k = 0 of each condition that has none of its own."""
        own0 = {(r["condition"], r["seed"]) for r in rows if int(r["holders"]) == 0}
        out = [r for r in rows if r["condition"] != "baseline"]
        for r in rows:
            if r["condition"] == "baseline":
                out += [{**r, "condition": c, "holders": "0"} for c in conds
                        if (c, r["seed"]) not in own0]
        return out

    a, b = spread(a), spread(b)
    both = {key(r) for r in a} & {key(r) for r in b}
    def pick(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        return _as_runs([r for r in rows if key(r) in both and r["condition"] in conds])

    return conds, threshold_table(pick(a)), threshold_table(pick(b))


def _thr(t: dict[str, Any] | None) -> str:
    if t is None or not np.isfinite(num(str(t.get("p_holm")))):
        return "not tested"
    return (f"p {num(str(t['p_holm'])):.3f}, step at {num(str(t['threshold'])):.0f} "
            f"[{num(str(t['threshold_low'])):.0f}, {num(str(t['threshold_high'])):.0f}] holders")


def compare_arms(label_a: str, a: dict[str, Any], label_b: str, b: dict[str, Any],
                 n_agents: int) -> list[str]:
    """Each finding of arm ``a`` and arm ``b`` side by side (dicts of res, half, holders)."""
    top = n_agents
    out = ["## The two arms side by side", "",
           f"`{label_a}` against `{label_b}`. Each arm's figures come from its own runs (its "
           "seeds and cells: see each page); holder-count differences are paired over the "
           "arm's seeds, margins are the arm's resilience tables.", "",
           "| finding | measure | " + f"{label_a} | {label_b} |", "|---|---|---|---|"]

    def row(finding: str, measure: str, fa: str, fb: str) -> None:
        out.append(f"| {finding} | {measure} | {fa} | {fb} |")

    for cond, metric, digits, finding in [
            ("without:benevolence", "nAUP", 3, "1. benevolence removal collapses"),
            ("without:benevolence", "final_population", 1, ""),
            ("without:benevolence", "collapsed", 2, ""),
            ("with:power", "betrayal_rate", 4, "2. power breeds betrayal, deception"),
            ("with:power", "deception_rate", 4, ""),
            ("with:power", "nAUP", 3, ""),
            ("with:tradition", "final_population", 1, "4. tradition suppresses growth")]:
        ea, eb = (paired(x["holders"], cond, metric, top) for x in (a, b))
        row(finding, f"{metric}, all {top} holding `{cond}` - none",
            fmt(ea, digits) if ea["n"] else "not run", fmt(eb, digits) if eb["n"] else "not run")
    for cond in ("baseline", "without:power", "without:benevolence", "without:tradition",
                 "with:power", "with:benevolence"):
        ra, rb = margin(a["res"], cond), margin(b["res"], cond)
        label = "5. values move d_FB" if cond == "baseline" else ""
        diff = "" if cond == "baseline" else " (difference to baseline)"
        row(label, f"d_FB `{cond}` at prevalence 1{diff}",
            dfb(ra) + ("" if cond == "baseline" else f" ({dfb_diff(ra)})"),
            dfb(rb) + ("" if cond == "baseline" else f" ({dfb_diff(rb)})"))
    names = ["baseline", "without:power", "without:benevolence", "without:tradition"]
    orders = []
    for x in (a, b):
        d = {c: num(margin(x["res"], c)["d_FB"]) if margin(x["res"], c) else float("nan")
             for c in names}
        orders.append(", ".join(sorted(d, key=lambda c: -d[c])) if all(
            np.isfinite(list(d.values()))) else "undefined")
    row("", "d_FB ordering, most robust first (study: without:tradition, baseline, "
        "without:power, without:benevolence)", orders[0], orders[1])
    conds, ta, tb = shared_thresholds(a["holders"], b["holders"])
    out += ["", "**3. Thresholds in prevalence**, both arms tested on the same conditions "
            f"({', '.join(conds) or 'none'}), seeds and holder counts (Holm across these "
            f"{len(conds)} conditions, so p-values differ from each arm's own page):", "",
            f"| condition | response | {label_a} | {label_b} |", "|---|---|---|---|"]
    by_b = {(t["condition"], t["response"]): t for t in tb}
    for t in ta:
        out.append(f"| {t['condition']} | {t['response']} | {_thr(t)} | "
                   f"{_thr(by_b.get((t['condition'], t['response'])))} |")
    for label, tt in ((label_a, ta), (label_b, tb)):
        clear_steps = [t for t in tt if num(str(t.get("p_holm"))) < 0.05]
        out.append("")
        out.append(f"{label}: {len(clear_steps)} of {len(tt)} condition-response pairs with a "
                   "step clearly better than a smooth quadratic (Holm p < 0.05)"
                   + (": " + "; ".join(f"{t['condition']} {t['response']} at "
                                      f"{num(str(t['threshold'])):.0f} holders"
                                      for t in clear_steps) if clear_steps else "") + ".")
    return out + [""]


def _load_arm(folder: Path) -> dict[str, Any]:
    """A committed results folder of an arm (FINDINGS.md's tables)."""
    def opt(name: str) -> list[dict[str, str]]:
        return read_csv(folder / name) if (folder / name).exists() else []

    return {"res": opt("resilience.csv"), "half": opt("resilience_half.csv"),
            "holders": opt("holders_results.csv")}


def main() -> None:
    """Copy the tables and write FINDINGS.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resilience", type=Path, required=True)
    p.add_argument("--resilience-half", type=Path, required=True)
    p.add_argument("--holders", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("baselines/results/study"))
    p.add_argument("--agents", type=int, default=25)
    p.add_argument("--arm", default=None,
                   help="policy spec of this arm when it is not plain 'scripted' "
                        "(e.g. scripted:v2)")
    p.add_argument("--compare", type=Path, default=None,
                   help="results folder of the other arm (e.g. baselines/results/study) to set "
                        "beside this one")
    p.add_argument("--holders-extra", type=Path, default=None,
                   help="a second holder-count sweep (e.g. more conditions at fewer counts): "
                        "its runs join --holders' and the threshold tests are rerun on all")
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
    if args.holders_extra is not None:
        from civa_env.experiments.thresholds import threshold_table, write_thresholds

        seen = {(r["condition"], r["holders"], r["seed"]) for r in holders}
        extra = [r for r in read_csv(args.holders_extra / "results.csv")
                 if (r["condition"], r["holders"], r["seed"]) not in seen]
        holders = holders + extra
        with open(out / "holders_results.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(holders[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(holders)
        if (args.holders_extra / "report").exists():
            shutil.copytree(args.holders_extra / "report", out / "holders_extra_report",
                            dirs_exist_ok=True)
        write_thresholds(threshold_table(_as_runs(holders)), out / "thresholds.csv")
        thresholds = read_csv(out / "thresholds.csv")
    lines = findings(res, half, holders, thresholds, args.agents, args.arm)
    if args.arm is not None:
        lines += coverage(res, half, holders, any(r.get("reading") for r in res))
    if args.compare is not None:
        lines += compare_arms("scripted (v1)", _load_arm(args.compare), args.arm or "this arm",
                              {"res": res, "half": half, "holders": holders}, args.agents)
    (out / "FINDINGS.md").write_text("\n".join(lines), encoding="utf-8")
    print(out / "FINDINGS.md")


if __name__ == "__main__":
    main()
