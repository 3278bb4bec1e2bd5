#!/usr/bin/env bash
# Pre-training for the real-tissue probe (`python -m benchmarks tissue`): S3R-CR, S3R-BR, local S3R, SimSiam (all bands)
# and MHSIM on the LEFT half of the shared HIMS core only (pixel columns 0-319), one recipe for all five:
# ResNet-18, 64-px crops, batch 16, 256 crops per epoch = 16 optimiser steps, 94 epochs = 1,504 steps, lr 1e-4
# (each objective's default otherwise), snapshots every 24 epochs (384 steps), no early stop, seed 0.
# Usage: [OBJECTIVES="cr local"] [EXTRA="--lr 1e-3" SUFFIX=_lr1e-3] bash benchmarks/tissue.sh [WORK]
#   (default runs/tissue; 7-11 minutes a method on 2 CPU cores). EXTRA: more pretrain options, for a recipe
#   variant; its runs go to WORK/<objective><SUFFIX> (`python -m benchmarks tissue` probes every run it finds).
set -euo pipefail
work=${1:-runs/tissue}
data=${S3R_ZOO_TEST_DATA:-../shared/data}/hims_bladder
mkdir -p "$work"
python3 - "$data" "$work" <<'PY'
import shutil, sys
import numpy as np
data, work = sys.argv[1:]
np.save(f"{work}/left.npy", np.ascontiguousarray(np.load(f"{data}/cube_hwc_f16.npy")[:, :320]))
shutil.copy(f"{data}/wavelengths_nm.txt", f"{work}/left.wavelengths_nm.txt")
PY
suffix=${SUFFIX:-}
for obj in ${OBJECTIVES:-cr br local simsiam mhsim}; do
  # shellcheck disable=SC2086
  python3 -m s3r_zoo pretrain --data "$work/left.npy" --nan inpaint --objective $obj --model s3r_resnet18 --crop 64 \
    --batch-size 16 --crops-per-cube 256 --epochs 94 --patience 1000 --snapshot-every 24 --seed 0 \
    ${EXTRA:-} --out "$work/$obj$suffix" > "$work/$obj$suffix.log" 2>&1
  echo "$obj$suffix rc=$? $(date -u +%FT%TZ)" >> "$work/done.txt"
done
