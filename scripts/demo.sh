#!/usr/bin/env bash
# The whole pipeline on the embedded long-tailed MNIST-1D (imbalance 100), on the CPU.
# Called by `make demo` with .venv/bin first on PATH. Outputs go to demo-runs/.
set -euo pipefail
DATA="mnist1d-lt:imb=100"
RUNS="${DEMO_RUNS:-demo-runs}"
EPOCHS="${DEMO_EPOCHS:-20}"
DEVICE="${DEMO_DEVICE:-cpu}"
COMMON=(--dataset "$DATA" --model cnn1d --epochs "$EPOCHS" --lr 0.05 --batch-size 64 --device "$DEVICE")
mkdir -p "$RUNS"

echo "== 1. teachers: CE, BSCE, CE + rotation SSL (SSD), two cosine-classifier teachers (CBD) =="
# Small models gain nothing from intra-op threads: two single-threaded trainings at a time.
train() { OMP_NUM_THREADS=1 softlabels train "${COMMON[@]}" "$@"; }
train --loss ce --ssl rotation --seed 0 --out "$RUNS/teacher-ssd" & ssd=$!
train --loss ce --seed 0 --out "$RUNS/teacher-ce"
train --loss bsce --seed 0 --out "$RUNS/teacher-bsce"
wait "$ssd"
train --loss ce --classifier cosine --seed 1 --out "$RUNS/teacher-cbd1" & cbd1=$!
train --loss ce --classifier cosine --augment strong --seed 2 --out "$RUNS/teacher-cbd2"
wait "$cbd1"

echo "== 2. dump all teachers once (logits + features, 4 replayable augmented views) =="
softlabels dump --dataset "$DATA" --out "$RUNS/cache.slc" --overwrite --views 4 \
  --chunk-size 512 --device "$DEVICE" \
  --teacher ce="$RUNS/teacher-ce/model.pt" --teacher bsce="$RUNS/teacher-bsce/model.pt" \
  --teacher ssd="$RUNS/teacher-ssd/model.pt" --teacher cbd1="$RUNS/teacher-cbd1/model.pt" \
  --teacher cbd2="$RUNS/teacher-cbd2/model.pt"
softlabels inspect "$RUNS/cache.slc"
softlabels verify "$RUNS/cache.slc" --dataset "$DATA"

echo "== 3. tune-tau: DiVE's virtual-example distribution of the BSCE teacher =="
softlabels tune-tau "$RUNS/cache.slc" --teacher bsce --plots "$RUNS/plots"

echo "== 4. calibrate the SSD teacher on its cached features (LWS, no backbone pass) =="
softlabels calibrate "$RUNS/cache.slc" --teacher ssd --method lws --overwrite --dataset "$DATA"

echo "== 5. distill CE, BSCE, KD, DiVE (tau auto) beside its online twin, BKD, CBD, SSD and ECL students =="
softlabels distill "$RUNS/cache.slc" --dataset "$DATA" --plan scripts/demo_plan.toml \
  --epochs "$EPOCHS" --out "$RUNS/students" --device "$DEVICE"
echo "results: $RUNS/students/summary.json, metrics.parquet, per_class.parquet, *.png"
