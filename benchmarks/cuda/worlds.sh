#!/usr/bin/env bash
# The lent-GPU run of the worlds benchmark's learning curves (issue "when does S3R help"): `python -m benchmarks
# worlds --budget gpu` (1,000 cubes of 128 px, 5,000 optimiser steps a method, world C first, then M+C) under a time
# limit; worlds.json is rewritten after every row and every fine-tuning row comes after every learning curve, so what
# finished inside the limit comes back, curves first.
#
# Usage (on the device, from the checkout root): bash benchmarks/cuda/worlds.sh OUT_DIR [BUDGET_S]
#   BUDGET_S (default 420): the run is stopped then (timeout); OUT_DIR gets worlds.json, worlds_curves.png,
#   worlds.log, summary.txt (commit worlds.json and the PNG under benchmarks/results/cuda/ with the device named).
# Rehearsed on CPU with: python -m benchmarks worlds --quick
# Measured on an H200 (2026-12-04, results/cuda/worlds_gpu_h200.json): simulating the 1,000 cubes 25 s; local S3R
# 5,040 steps in 114 s (44 steps/s, bf16, cubes on the GPU) plus its snapshot probes; so 420 s hold world C's
# calibration and about three methods' curves. The device image's timm was not checked: carry a timm >= 1.0.31
# wheel (.whl; the device README says how) and install it first, as that run did.
set -uo pipefail
out=${1:?usage: worlds.sh OUT_DIR [BUDGET_S]}
budget=${2:-420}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/summary.txt"
timeout "$budget" python3 -m benchmarks worlds --budget gpu --results "$out" --work "$(mktemp -d)" \
  2>&1 | tee "$out/worlds.log"
echo "rc=${PIPESTATUS[0]}" | tee -a "$out/summary.txt"
