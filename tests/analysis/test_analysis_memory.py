"""The pass streams: peak memory grows with the chunk size, not with N."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Runs in a fresh interpreter so that the peak RSS (VmHWM) belongs to this pass alone.
SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from softlabels_analysis_helpers import make_cache
from softlabels.analysis import virtual_examples

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)

n, c, chunk = 40_000, 1_000, 256
rng = np.random.default_rng(0)
labels = np.repeat(np.arange(c), n // c)
def build(url, rows):
    z = np.empty((rows, 1, c), np.float16)
    for s in range(0, rows, 4096):
        z[s:s + 4096] = rng.normal(size=(min(4096, rows - s), 1, c)).astype(np.float16)
    return make_cache(url, {"t": z}, labels[:rows], chunk_size=chunk, dtype="float16",
                      compressor="none")
small = build(sys.argv[2] + "/small.slc", 2 * chunk)
big = build(sys.argv[2] + "/big.slc", n)
virtual_examples(small, taus=(1, 2), powers=(1,))   # warm-up: threads, allocator, imports
try:
    open("/proc/self/clear_refs", "w").write("5")   # reset the high-water mark
except OSError:
    pass
before = status("VmRSS")
ve = virtual_examples(big, taus=(1, 2), powers=(1,))
print(json.dumps({"growth": status("VmHWM") - before, "logits_bytes": n * c * 2,
                  "chunk_bytes": chunk * c * 2, "total": float(ve.grid[0].per_class.sum())}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_peak_memory_bounded_by_chunks_not_n(tmp_path: Path) -> None:
    # A 80 MB float16 cache (160 MB as float32) of 157 chunks of 0.5 MB each.
    # (The big cache is written with the whole array in memory, before the measurement.)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(HERE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["total"] == pytest.approx(40_000, rel=1e-5)
    # Everything in flight is a few chunks plus small blocks; reading the logits whole would
    # need 80 MB (float16), 160 MB as float32.
    assert got["growth"] < 24 * 2**20, got
    assert got["growth"] < got["logits_bytes"] / 3, got
