#!/usr/bin/env bash
# Wheels a GPU image without them needs for benchmarks/gpu_check.sh, into .whl/ (ignored by
# git; carry it to the GPU machine with the working tree), and the project's own wheel. For CPython 3.12 on x86_64 Linux by
# default (the image of DEVELOPERS.md: Python 3.12, its own torch, torchvision, pyarrow, typer,
# rich). Each package at the version this machine's .venv has, so both run the same code.
#
#   bash benchmarks/gpu_wheels.sh                 # -> .whl/*.whl (~11 MB)
#   GPU_WHEELS=all bash benchmarks/gpu_wheels.sh  # + plots, scipy, tests (~73 MB: over a
#                                                 #   64 MiB carry; for images without them)
#   GPU_PY=3.11 bash benchmarks/gpu_wheels.sh     # for another Python
set -euo pipefail
PY="${PYTHON:-.venv/bin/python}"
GPU_PY="${GPU_PY:-3.12}"
DEST="${DEST:-.whl}"
# What the image lacks (DEVELOPERS.md): the array store and the offline data generator, with
# their own dependencies. gpu_check.sh names any other module its steps miss.
PACKAGES=(zarr numcodecs donfig google-crc32c typing_extensions packaging pyyaml mnist1d)
if [ "${GPU_WHEELS:-}" = all ]; then
  PACKAGES+=(
    matplotlib contourpy cycler fonttools kiwisolver pyparsing python-dateutil six
    scikit-learn scipy joblib threadpoolctl
    pytest iniconfig pluggy pygments hypothesis attrs sortedcontainers
  )
fi
mapfile -t SPECS < <("$PY" - "${PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"{name} is not installed in this venv: run `make install` first")
PY
)
mkdir -p "$DEST"
abi="cp${GPU_PY/./}"
"$PY" -m pip download --quiet --dest "$DEST" --no-deps --only-binary=:all: \
  --python-version "$GPU_PY" --implementation cp --abi "$abi" --abi none --abi abi3 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any \
  "${SPECS[@]}"
# The project itself, for images that cannot build it (pure Python: any version, any platform).
rm -f "$DEST"/softlabels-*.whl
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$DEST" .
ls "$DEST"/*.whl | wc -l | xargs echo "wheels in $DEST:"
