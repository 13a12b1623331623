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

echo "== 2. dump both teachers once (logits + features, 4 replayable augmented views) =="
softlabels dump --dataset "$DATA" --teacher ce="$RUNS/teacher-ce/model.pt" \
  --teacher bsce="$RUNS/teacher-bsce/model.pt" --out "$RUNS/cache.slc" --overwrite \
  --views 4 --chunk-size 512 --device "$DEVICE"
softlabels inspect "$RUNS/cache.slc"
softlabels verify "$RUNS/cache.slc" --dataset "$DATA"

echo "== 3. tune-tau: DiVE's virtual-example distribution of the BSCE teacher =="
softlabels tune-tau "$RUNS/cache.slc" --teacher bsce --plots "$RUNS/plots"

echo "== 4. distill CE, BSCE, KD, DiVE (tau auto) and BKD students in one pass =="
softlabels distill "$RUNS/cache.slc" --dataset "$DATA" --plan scripts/demo_plan.toml \
  --epochs "$EPOCHS" --out "$RUNS/students" --device "$DEVICE"
echo "results: $RUNS/students/summary.json, metrics.parquet, per_class.parquet, *.png"
