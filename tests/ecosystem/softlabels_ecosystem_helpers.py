"""Helpers of the ecosystem tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own_loop.py"

# 159 training samples (40, 30, 23, 18, 14, 11, 8, 6, 5, 4 per class), 60 test samples.
DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"
SIGNAL = 40  # MNIST-1D signals are [1, 40]
CLASSES = 10


def run_python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a child process (one thread, as the tests' own runs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
