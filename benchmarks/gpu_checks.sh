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
