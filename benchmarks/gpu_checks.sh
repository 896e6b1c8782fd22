#!/usr/bin/env bash
# All GPU checks of the LLM layer in one script, for a session that is lent a GPU machine
# (about 8 minutes on one H200). Writes its tables under ${OUT:-benchmarks/results}.
#
#   bash benchmarks/gpu_checks.sh            # after: pip install torch==<cuda build> -e .[llm]
#
# 1. Throughput of a Qwen2.5-1.5B-shaped model with random weights (no download), batch
#    sizes 8 to 256, batched against one resident at a time (issue 4's target: at least 20x
#    the decisions per second of one-at-a-time at batch 64).
# 2. The same at 7B shape, smaller batches, to see memory and prompt-processing limits.
# 3. The OpenAI-compatible backend against `vllm serve` (below).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv || true
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__)"
python benchmarks/llm_throughput.py --random-shape qwen2.5-1.5b --device cuda --dtype bfloat16 \
    --batch-sizes 8,16,32,64,128,256 --sequential 16 --label gpu-qwen2.5-1.5b --out "$out"
python benchmarks/llm_throughput.py --random-shape qwen2.5-7b --device cuda --dtype bfloat16 \
    --batch-sizes 8,32,64 --sequential 8 --label gpu-qwen2.5-7b --out "$out"
# 3. The OpenAI-compatible backend against a `vllm serve` of the same 1.5B shape on this
#    machine (issue 12): a 25-resident community for 3 days over HTTP, prefix caching on.
#    Needs vLLM in this environment (pip install -e .[vllm,openai]); skipped without it.
if python -c "import vllm" 2>/dev/null; then
  shape_dir=/tmp/civa-qwen2.5-1.5b
  python -c "from civa_env.policies.llm.models.tiny import build_random_shape as b; b('$shape_dir', 'qwen2.5-1.5b')"
  vllm serve "$shape_dir" --port 8011 --enable-prefix-caching --max-model-len 16384 \
      --served-model-name civa-1.5b > "$out/gpu-vllm-serve.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    curl -sf http://127.0.0.1:8011/v1/models > /dev/null && break
    sleep 2
  done
  start=$(date +%s)
  civa run --policy llm --model civa-1.5b --agents 25 --days 3 --seed 0 --no-plots \
      --no-progress --overwrite --out "$out/gpu-openai-run" --llm-option backend=openai \
      --llm-option base_url=http://127.0.0.1:8011/v1 --llm-option cache=off \
      --llm-option max_concurrency=64
  end=$(date +%s)
  python - "$out" "$((end - start))" <<'PY'
import json, sys
from pathlib import Path
out, wall = Path(sys.argv[1]), float(sys.argv[2])
s = json.loads((out / "gpu-openai-run" / "llm_stats.json").read_text())
rows = ["| backend | decisions | valid | prompt tokens | completion tokens | wall s | "
        "decisions/s |", "|---|---:|---:|---:|---:|---:|---:|",
        f"| openai -> vllm serve (1.5B shape, random weights) | {s['decisions']} | "
        f"{s['valid']} | {s['prompt_tokens']} | {s['completion_tokens']} | {wall:.0f} | "
        f"{s['decisions'] / wall:.2f} |"]
(out / "gpu_openai.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
  kill $server 2>/dev/null || true
else
  echo "vLLM not installed: skipping the OpenAI-backend check (pip install -e .[vllm,openai])"
fi
