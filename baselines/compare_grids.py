"""The value grid of two arms side by side: scripted-v1 and scripted-v2 (social memory).

    python baselines/compare_grids.py --a baselines/results/grid --b baselines/results/grid_v2 \\
        --out baselines/results/grid_v2/ARMS.md

Reads each arm's report (``report.md``'s community-metric and behaviour-rate tables, and
``thresholds.csv``) as ``baselines/reproduce_grid.py`` wrote it, and writes one page: per
condition at prevalence 0.5 and 1, nAUP, SC, cooperation, betrayal and deception with their
95% intervals in each arm, and which threshold tests found a step (Holm p < 0.05). Nothing is
rerun or tuned: the figures are those of the two reports.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

METRICS = ("nAUP", "SC", "cooperation_rate", "betrayal_rate", "deception_rate")


def tables(report: Path) -> dict[tuple[str, str], dict[str, str]]:
    """{(condition, prevalence): {column: cell}} from every Markdown table of report.md whose
    first columns are condition and prevalence."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    header: list[str] | None = None
    for line in report.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells if cells[:2] == ["condition", "prevalence"] else []
            continue
        if not header or set(cells[0]) <= {"-"}:
            continue
        out.setdefault((cells[0], cells[1]), {}).update(zip(header[2:], cells[2:], strict=False))
    return out


def steps(path: Path) -> list[str]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        try:
            p = float(r["p_holm"])
        except ValueError:
            continue
        if p < 0.05:
            out.append(f"{r['condition']} {r['response']} at {float(r['threshold']):.0f} holders "
                       f"[{float(r['threshold_low']):.0f}, {float(r['threshold_high']):.0f}] "
                       f"(p Holm {p:.3f})")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=Path, default=Path("baselines/results/grid"))
    p.add_argument("--b", type=Path, default=Path("baselines/results/grid_v2"))
    p.add_argument("--label-a", default="scripted (v1)")
    p.add_argument("--label-b", default="scripted:v2")
    p.add_argument("--out", type=Path, default=Path("baselines/results/grid_v2/ARMS.md"))
    args = p.parse_args()
    a, b = tables(args.a / "report.md"), tables(args.b / "report.md")
    conditions = sorted({c for c, _ in a} | {c for c, _ in b})
    lines = [f"# The value grid, two arms: `{args.label_a}` and `{args.label_b}`", "",
             f"From `{args.a}/report.md` and `{args.b}/report.md` (same grid: 25 residents, "
             "30 days, 8 seeds per cell, paired worlds; the arms differ only in the residents' "
             "policy). Cells: mean [95% bootstrap interval] over seeds. Baseline is the same "
             "world in both arms, but its residents differ: v1's plain survival strategy, v2's "
             "conditional cooperator with memory (`docs/scripted.md`).", ""]
    for metric in METRICS:
        lines += [f"## {metric}", "",
                  f"| condition | prevalence | {args.label_a} | {args.label_b} |",
                  "|---|---|---|---|"]
        for cond in conditions:
            for prev in (("0",) if cond == "baseline" else ("0.5", "1")):
                va = a.get((cond, prev), {}).get(metric, "-")
                vb = b.get((cond, prev), {}).get(metric, "-")
                lines.append(f"| {cond} | {prev} | {va} | {vb} |")
        lines.append("")
    lines += ["## Threshold tests along holders (prevalences 0, 0.25, 0.5, 0.75, 1)", ""]
    for label, folder in ((args.label_a, args.a), (args.label_b, args.b)):
        found = steps(folder / "thresholds.csv")
        lines.append(f"- `{label}`: {len(found)} steps clearly better than a smooth quadratic"
                     + (": " + "; ".join(found) if found else "") + ".")
    lines.append("")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(args.out)


if __name__ == "__main__":
    main()
