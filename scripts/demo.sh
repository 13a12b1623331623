#!/usr/bin/env bash
# The whole pipeline on the embedded long-tailed MNIST-1D (imbalance 100), on the CPU.
# Called by `make demo` with .venv/bin first on PATH. Outputs go to demo-runs/.
set -euo pipefail
DATA="mnist1d-lt:imb=100"
RUNS="${DEMO_RUNS:-demo-runs}"
EPOCHS="${DEMO_EPOCHS:-40}"
DEVICE="${DEMO_DEVICE:-cpu}"
mkdir -p "$RUNS"

echo "== 1. teachers: CE and BSCE (cnn1d, $EPOCHS epochs) =="
for loss in ce bsce; do
  softlabels train --dataset "$DATA" --model cnn1d --loss "$loss" --epochs "$EPOCHS" \
    --lr 0.05 --batch-size 64 --seed 0 --device "$DEVICE" --out "$RUNS/teacher-$loss"
done

echo "== 2. dump both teachers once (clean view + 4 replayable augmented views) =="
softlabels dump --dataset "$DATA" --teacher ce="$RUNS/teacher-ce/model.pt" \
  --teacher bsce="$RUNS/teacher-bsce/model.pt" --out "$RUNS/cache.slc" --overwrite \
  --views 4 --chunk-size 512 --device "$DEVICE"
softlabels inspect "$RUNS/cache.slc"
softlabels verify "$RUNS/cache.slc" --dataset "$DATA"

echo "== 3. evaluate the teachers on the balanced test split =="
for loss in ce bsce; do
  softlabels eval --dataset "$DATA" --model "$RUNS/teacher-$loss/model.pt" --device "$DEVICE"
done
