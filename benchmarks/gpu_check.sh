#!/usr/bin/env bash
# The GPU check: on a machine with one CUDA GPU and its own torch (>= 2.4), from the repo root.
#
#   bash benchmarks/gpu_wheels.sh           # here, once: the wheels the image lacks -> .whl/
#   bash benchmarks/gpu_check.sh            # there: figures as JSON under $OUT (default /tmp/gpu-check)
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 bash benchmarks/gpu_check.sh   # every step, on a CPU
#
# The wheels in .whl/ (zarr, numcodecs, mnist1d and theirs; see the README, "GPU check") are
# installed with --no-deps into /tmp/site and the project itself with --no-deps, so the
# image's torch is kept. Every step is bounded in time; the whole script is meant to finish
# within 10 minutes on one modern GPU. GPU_CHECK_QUICK=1: small settings (a dry run of every
# step on a CPU, a few minutes).
set -uo pipefail
OUT="${OUT:-/tmp/gpu-check}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
QUICK="${GPU_CHECK_QUICK:-}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
deps=$(ls .whl/*.whl 2>/dev/null | grep -v '/softlabels-')
if [ -n "$deps" ]; then
  # shellcheck disable=SC2086  # one wheel per word
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site $deps && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The project from this tree; where the image cannot build it (no setuptools >= 68 with
# bdist_wheel), the wheel gpu_wheels.sh built of the same tree.
if ! "$PY" -m pip install -q --no-deps --no-build-isolation --no-index . >"$OUT/install.log" 2>&1; then
  own=$(ls .whl/softlabels-*.whl 2>/dev/null | head -n 1)
  [ -n "$own" ] && "$PY" -m pip install -q --no-deps --no-index --upgrade --target /tmp/site "$own" \
    >>"$OUT/install.log" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} \
    && echo "installed $own (this tree could not be built here)" | tee -a "$OUT/install.log" \
    || { echo "install failed (see $OUT/install.log)"; exit 1; }
fi
# What the steps import, named up front (a missing one would fail a step later, less clearly).
"$PY" - <<'PY' | tee "$OUT/missing.txt"
import importlib.util
need = ["torch", "torchvision", "numpy", "zarr", "numcodecs", "pyarrow", "fsspec", "typer",
        "rich", "matplotlib", "mnist1d", "pytest", "hypothesis", "scipy", "sklearn"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
print("missing modules: " + (", ".join(missing) if missing else "none"))
PY
"$PY" - <<'PY' >"$OUT/env.json"
import json, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))
PY
cat "$OUT/env.json"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $((SECONDS - t0))}" | tee -a "$OUT/steps.jsonl"
  [ $rc -eq 0 ] || status=1
}
if [ -n "$QUICK" ]; then
  DEMO_EPOCHS=2; DISTILL_ARGS=(--repeats 1 --epochs 1); RESNET_ARGS=(--epochs 1 --quick)
else
  DEMO_EPOCHS=10; DISTILL_ARGS=(--repeats 3 --epochs 2); RESNET_ARGS=(--epochs 4)
fi
# -P: the installed package, not this tree's softlabels/ (its stores/ and cli/ live beside it).
step pytest_gpu 120 "$PY" -P -m pytest -q -m gpu -p no:cacheprovider
step demo 180 env DEMO_DEVICE="$DEVICE" DEMO_EPOCHS="$DEMO_EPOCHS" DEMO_RUNS=/tmp/gpu-demo \
  PATH="/tmp/site/bin:$(dirname "$(command -v "$PY")"):$PATH" bash scripts/demo.sh
step bench_distill 150 "$PY" benchmarks/bench_distill.py --device "$DEVICE" "${DISTILL_ARGS[@]}"
tail -n 1 "$OUT/bench_distill.log" >"$OUT/bench_distill.json" 2>/dev/null || true
step resnet_dive 150 "$PY" benchmarks/bench_resnet_dive.py --device "$DEVICE" "${RESNET_ARGS[@]}" \
  --out "$OUT/resnet"
cp "$OUT/resnet/resnet_dive.json" "$OUT/" 2>/dev/null || true
echo "figures: $OUT"
exit $status
