"""Issue 7, item 2: a distill killed with SIGKILL after a checkpoint resumes from it and ends
with the weights of an uninterrupted run (CPU), with the same per-epoch metrics."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from softlabels_reliability_faults import DATASET, invoke, subprocess_env, wait_for

EPOCHS = 6


def _args(cache: Path, out: Path) -> list[str]:
    return [
        "distill",
        str(cache),
        "--dataset",
        DATASET,
        "--method",
        "kd",
        "--teacher",
        "a",
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-plots",
        "--eval-every",
        "3",
    ]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _history(run: Path) -> list[tuple[int, float, float | None]]:
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    return [(r["epoch"], r["loss"], r.get("top1")) for r in rows]


@pytest.mark.slow
def test_killed_distill_resumes_to_the_same_weights(tmp_path: Path, reference) -> None:
    cache = reference("views")  # three cached views per sample: students replay them
    whole = tmp_path / "whole"
    done = invoke(*_args(cache, whole))
    assert done.exit_code == 0, done.stderr

    cut = tmp_path / "cut"
    state = cut / "student" / "state.pt"
    cmd = [sys.executable, "-m", "softlabels", *_args(cache, cut)]
    with subprocess.Popen(
        cmd, env=subprocess_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        try:
            wait_for(state.exists, proc, "first epoch checkpoint")
            time.sleep(random.Random("issue7-distill").uniform(0.0, 0.05))
            finished_early = proc.poll() is not None
        finally:
            proc.kill()  # SIGKILL
            proc.wait()
    assert not finished_early and not (cut / "student" / "model.pt").exists(), (
        "the run finished before the kill"
    )
    saved = torch.load(state, map_location="cpu", weights_only=True)
    assert 1 <= saved["epochs_done"] < EPOCHS

    again = invoke(*_args(cache, cut))  # the same command
    assert again.exit_code == 0, again.stderr
    a, b = _weights(whole / "student" / "model.pt"), _weights(cut / "student" / "model.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    assert _history(cut) == _history(whole)
    assert [e for e, _l, _t in _history(cut)] == list(range(1, EPOCHS + 1))
