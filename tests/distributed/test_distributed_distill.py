"""``torchrun ... softlabels distill``: DDP over two gloo ranks trains what one process does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from softlabels_distributed_helpers import DATASET, one_thread, torchrun

from softlabels.students import distill, load_plan

PLAN = """
[defaults]
epochs = 2
batch_size = 32
data_seed = 0
lr = 0.05

[[student]]
name = "kd"
model = "mlp"
method = "kd"
teacher = "a"
seed = 1

[[student]]
name = "ce"
model = "mlp"
method = "ce"
seed = 2

[[student]]
name = "bn"
model = "cnn1d"
method = "ce"
seed = 3
"""
EXACT = ("kd", "ce")  # mlp has no BatchNorm: the global batch's gradient, up to rounding


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _losses(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for row in pq.read_table(path).to_pylist():
        out.setdefault(row["student"], []).append(row["loss"])
    return out


@pytest.mark.slow
def test_two_ranks_train_what_one_process_trains(reference: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    two = tmp_path / "two"
    proc = torchrun(
        "distill",
        str(reference),
        "--dataset",
        DATASET,
        "--out",
        str(two),
        "--plan",
        str(plan),
        "--device",
        "cpu",
        "--no-plots",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)  # rank 0 alone prints: one JSON document
    assert [s["status"] for s in result["students"]] == ["ok", "ok", "ok"]

    one = tmp_path / "one"
    with one_thread():
        alone = distill(
            str(reference),
            DATASET,
            load_plan(str(plan)),
            one,
            device="cpu",
            plots=False,
            evaluate_teachers=False,
        )
    assert alone.passes == result["passes"] == 1
    for name in EXACT:
        torch.testing.assert_close(
            _weights(two / name / "model.pt"), _weights(one / name / "model.pt"), atol=1e-5, rtol=0
        )
    # Losses of the global batch, gathered over ranks, as one process logs them.
    l2, l1 = _losses(two / "metrics.parquet"), _losses(one / "metrics.parquet")
    for name in EXACT:
        assert l2[name] == pytest.approx(l1[name], rel=1e-5)
    # cnn1d's BatchNorm sees each rank's half batch on the CPU: close, not equal.
    assert len(l2["bn"]) == 2 and all(math.isfinite(x) for x in l2["bn"])
    assert {s["name"]: s["top1"] for s in result["students"]}["kd"] == pytest.approx(
        {s["name"]: s["top1"] for s in alone.students}["kd"]
    )
