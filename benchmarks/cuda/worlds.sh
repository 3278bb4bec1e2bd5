#!/usr/bin/env bash
# The lent-GPU run of the worlds benchmark's learning curves (issue "when does S3R help"): `python -m benchmarks
# worlds --budget gpu` (128-px cubes, 5,000 optimiser steps a method, world C first, then M+C) under a time limit;
# worlds.json is rewritten after every row, so what finished inside the limit comes back.
#
# Usage (on the device, from the checkout root): bash benchmarks/cuda/worlds.sh OUT_DIR [BUDGET_S]
#   BUDGET_S (default 420): the run is stopped then (timeout); OUT_DIR gets worlds.json, worlds_curves.png,
#   worlds.log, summary.txt (commit worlds.json and the PNG to benchmarks/results/ with the device named).
# Rehearsed on CPU with: python -m benchmarks worlds --quick
# Not yet run on a device: its size is an estimate (about 40 ResNet-18 steps/s at 32 x 128 px in bf16 on an
# H100/H200 with the cubes on the GPU: world C's calibration and three methods' pre-training in ~7 minutes).
set -uo pipefail
out=${1:?usage: worlds.sh OUT_DIR [BUDGET_S]}
budget=${2:-420}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/summary.txt"
timeout "$budget" python3 -m benchmarks worlds --budget gpu --results "$out" --work "$(mktemp -d)" \
  2>&1 | tee "$out/worlds.log"
echo "rc=${PIPESTATUS[0]}" | tee -a "$out/summary.txt"
