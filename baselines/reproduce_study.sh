#!/usr/bin/env bash
# The study redone with scripted residents (issue 11): resilience margins and holder-count
# sweeps, then the findings page in baselines/results/study/. Resumable: rerun after an
# interruption. About 1.5 h on 2 busy cores (the times are in baselines/results/study/FINDINGS.md).
set -euo pipefail
out=${1:-runs/study}
conditions=$(python -c "from civa_env.world.values import all_conditions; print(','.join(all_conditions()[1:]))")
# Resilience: every with/without condition at prevalence 1 (and baseline), upkeep stressor.
civa resilience --conditions all --prevalences 1 --seeds 8 --workers 2 --out "$out/res_p1"
# The study's four margins at prevalence 0.5.
civa resilience --conditions baseline,without:benevolence,without:power,without:tradition \
    --prevalences 0.5 --seeds 8 --workers 2 --no-diagnostics --out "$out/res_p05"
# Holder counts 0, 2, ..., 24, 25 of every condition, 120 days, 4 seeds.
civa sweep --conditions "$conditions" --holders 0,2,4,6,8,10,12,14,16,18,20,22,24,25 \
    --seeds 4 --days 120 --workers 2 --out "$out/holders"
civa report "$out/holders" --no-pages
python baselines/study_findings.py --resilience "$out/res_p1" --resilience-half "$out/res_p05" \
    --holders "$out/holders" --out baselines/results/study
