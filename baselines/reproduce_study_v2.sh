#!/usr/bin/env bash
# The study's second arm: the same tests as reproduce_study.sh with scripted residents that
# keep a social memory (--policy scripted:v2, table scripted-v2, docs/scripted.md), at a
# reduced size so that it runs in about an hour and a half on one busy core (--workers 1):
# resilience margins of every condition at prevalence 1 (8 seeds, as v1) and the study's at
# 0.5 (4 seeds), no fold diagnostics; holder counts of all 20 conditions as v1 (4 seeds, 120
# days). Resumable: rerun after an interruption.
# Writes baselines/results/study_v2/ (FINDINGS.md there says what was cut, and compares the
# arms). Full size as v1: add the fold diagnostics and 8 seeds at prevalence 0.5.
set -euo pipefail
out=${1:-runs/study_v2}
policy=scripted:v2
workers=${WORKERS:-1}
# Resilience at prevalence 1: every condition (as v1), 8 seeds, no fold diagnostics.
echo "[$(date +%T)] resilience at prevalence 1"
civa resilience --policy "$policy" --conditions all \
    --prevalences 1 --seeds 8 --workers "$workers" --no-diagnostics --no-progress \
    --out "$out/res_p1"
# The study's three at prevalence 0.5.
echo "[$(date +%T)] resilience at prevalence 0.5"
civa resilience --policy "$policy" \
    --conditions baseline,without:benevolence,without:power,without:tradition \
    --prevalences 0.5 --seeds 4 --workers "$workers" --no-diagnostics --no-progress \
    --out "$out/res_p05"
# Holder counts 0, 2, ..., 24, 25 of the findings' conditions, 120 days, 4 seeds.
echo "[$(date +%T)] holder counts"
civa sweep --policy "$policy" --conditions without:benevolence,with:power,with:tradition \
    --holders 0,2,4,6,8,10,12,14,16,18,20,22,24,25 --seeds 4 --days 120 \
    --workers "$workers" --no-progress --out "$out/holders"
echo "[$(date +%T)] report"
civa report "$out/holders" --no-pages
# The other 17 conditions at the same holder counts and seeds (the threshold tests of all 20).
echo "[$(date +%T)] holder counts, the other 17 conditions"
rest=$(python -c "from civa_env.world.values import all_conditions; print(','.join(c for c in all_conditions()[1:] if c not in ('without:benevolence', 'with:power', 'with:tradition')))")
civa sweep --policy "$policy" --conditions "$rest" \
    --holders 0,2,4,6,8,10,12,14,16,18,20,22,24,25 --seeds 4 --days 120 \
    --workers "$workers" --no-progress --out "$out/holders_rest"
civa report "$out/holders_rest" --no-pages
echo "[$(date +%T)] findings"
python baselines/study_findings.py --resilience "$out/res_p1" --resilience-half "$out/res_p05" \
    --holders "$out/holders" --holders-extra "$out/holders_rest" \
    --out baselines/results/study_v2 --arm "$policy" --compare baselines/results/study
