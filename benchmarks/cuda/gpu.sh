#!/usr/bin/env bash
# The lent-GPU run of "one GPU at full speed": `python -m benchmarks.gpu` inside a time budget, so that
# start-up, this script and the copy back fit the 15 minutes of device time a task gets.
#
# Usage (on the device, from the checkout root): bash benchmarks/cuda/gpu.sh OUT_DIR [BUDGET_S]
#   BUDGET_S (default 420): rows that would start later are recorded as skipped; the whole run is
#   killed 90 s after it. OUT_DIR gets gpu.json (commit it to benchmarks/results/), gpu.log, summary.txt.
# Rehearsed on CPU with: python -m benchmarks.gpu --tiny --results runs/gpu_tiny
# The device image has torch and timm; carry a timm >= 1.0.31 wheel in .whl if its timm is older
# (pip install --target SITE .whl/*.whl, then put SITE first on PYTHONPATH; see the device README).
set -uo pipefail
out=${1:?usage: gpu.sh OUT_DIR [BUDGET_S]}
budget=${2:-420}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/summary.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())" \
  | tee -a "$out/summary.txt"
timeout $((budget + 90)) python3 -m benchmarks.gpu --results "$out" --budget-s "$budget" 2>&1 | tee "$out/gpu.log"
echo "rc=${PIPESTATUS[0]}" | tee -a "$out/summary.txt"
