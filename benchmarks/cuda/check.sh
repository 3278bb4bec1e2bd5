#!/usr/bin/env bash
# The CUDA paths in one go, on a machine with a CUDA GPU: the environment, the speed benchmark
# (GPU rows: bf16 channels_last ResNet-50 images/s and MFU, one PLGC-sized S3R-CR epoch),
# then short pre-training runs (S3R-CR, S3R-BR; fp16 with GradScaler and bf16 autocast) on
# the real HIMS cube and short fine-tuning runs on a simulated set, each with its log.
#
# Usage: bash benchmarks/cuda/check.sh OUT_DIR [DATA_ROOT]
#   DATA_ROOT holds hims_bladder/cube_hwc_f16.npy (default: $S3R_ZOO_TEST_DATA, else ../shared/data).
# OUT_DIR gets summary.txt (one line per step: rc and seconds), speed.json, RESULTS.md and
# logs.tgz (every step's log, the runs' summary.json and aggregate.json).
# Runs from a checkout without installing it (PYTHONPATH=.); the machine needs torch,
# timm >= 1.0.31 and the other requirements of setup.cfg.
set -uo pipefail
out=${1:?usage: check.sh OUT_DIR [DATA_ROOT]}
data=${2:-${S3R_ZOO_TEST_DATA:-../shared/data}}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} S3R_ZOO_TEST_DATA=$data PYTHONUNBUFFERED=1
zoo() { python3 -m s3r_zoo "$@"; }
step() {  # step NAME COMMAND...: run, log to $out/NAME.log, record rc and seconds
  local name=$1; shift; local t0=$SECONDS
  echo "== $name: $*"
  "$@" >"$out/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$out/summary.txt"
  tail -n 4 "$out/$name.log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/summary.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$out/summary.txt"
work=$(mktemp -d)
step speed python3 -m benchmarks speed --results "$out/bench"
for amp in fp16 bf16; do
  for obj in cr br; do
    step "pretrain_${obj}_$amp" zoo pretrain --data "$data/hims_bladder/cube_hwc_f16.npy" --nan inpaint --model s3r_resnet18 --objective $obj \
      --epochs 3 --batch-size 16 --crop 96 --crops-per-cube 256 --amp $amp --channels-last --seed 0 \
      --out "$work/pre_${obj}_$amp"
  done
done
step synth zoo data synth --preset pdac_like --n 120 --size 96 --seed 0 --out "$work/pdac"
for amp in fp16 bf16; do
  step "finetune_$amp" zoo finetune --data "$work/pdac" --model s3r_resnet18 --init "$work/pre_cr_$amp/encoder.safetensors" \
    --epochs 3 --batch-size 16 --crop 64 --amp $amp --seeds 2 --out "$work/ft_$amp"
  cp "$work/ft_$amp/aggregate.json" "$out/finetune_$amp.aggregate.json" 2>/dev/null
done
for d in "$work"/pre_*; do cp "$d/summary.json" "$out/$(basename "$d").summary.json" 2>/dev/null; done
cp "$out/bench/speed.json" "$out/speed.json" 2>/dev/null
keep="logs.tgz summary.txt speed.json RESULTS.md"
tar czf "$work/logs.tgz" -C "$out" --exclude=./summary.txt --exclude=./speed.json --exclude=./RESULTS.md . \
  && mv "$work/logs.tgz" "$out/logs.tgz"
for f in "$out"/* "$out"/.[!.]*; do
  [ -e "$f" ] && [[ " $keep " != *" $(basename "$f") "* ]] && rm -rf "$f"
done
cat "$out/summary.txt"
