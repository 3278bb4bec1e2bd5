#!/usr/bin/env bash
# S3R-CR and S3R-BR pre-training of ResNet-18 on the real HIMS cube on one CUDA GPU, side by side
# (two processes), bf16 autocast + channels_last, with held-out validation (the bottom rows).
#
# Usage: bash benchmarks/cuda/pretrain_hims.sh OUT_DIR [DATA_ROOT] [EPOCHS]
# OUT_DIR gets, per objective, summary.json, loss_curve.png and beta_profile.png, and runs.tgz
# (logs, metrics.jsonl, stats.json of both runs; no weights).
set -uo pipefail
out=${1:?usage: pretrain_hims.sh OUT_DIR [DATA_ROOT] [EPOCHS]}
data=${2:-${S3R_ZOO_TEST_DATA:-../shared/data}}
epochs=${3:-30}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
work=$(mktemp -d)
for obj in cr br; do
  python3 -m s3r_zoo pretrain --data "$data/hims_bladder/cube_hwc_f16.npy" --nan inpaint --model s3r_resnet18 \
    --objective $obj --epochs "$epochs" --batch-size 16 --crop 96 --crops-per-cube 1024 --lr 3e-4 --patience 15 \
    --amp bf16 --num-workers 4 --out "$work/$obj" > "$work/$obj.log" 2>&1 &
done
wait
for obj in cr br; do
  tail -n 2 "$work/$obj.log"
  for f in summary.json loss_curve.png beta_profile.png; do cp "$work/$obj/$f" "$out/${obj}_$f" 2>/dev/null; done
done
tar czf "$out/runs.tgz" -C "$work" --exclude='*.safetensors' --exclude='tensorboard' .
