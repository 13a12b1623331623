"""Two tiny distill runs (two seeds, same cache) made once per session, and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from softlabels.cli.app import app
from softlabels.engine.optim import OptimConfig
from softlabels.students import StudentSpec, distill
from softlabels.teachers import DumpConfig, TeacherSpec, dump
from softlabels.teachers.train import TrainConfig, train

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"  # 10 classes, 40 ... 4 per class: thirds


def _students(seed: int) -> list[StudentSpec]:
    common: dict[str, Any] = {"model": "cnn1d", "epochs": 1, "batch_size": 32, "seed": seed}
    return [
        StudentSpec(name="ce", method="ce", lr=0.05, **common),
        StudentSpec(name="dive-t2", method="dive", teacher="bsce", tau=2.0, lr=0.05, **common),
        # A long name: the narrow table must still show it whole in 80 columns.
        StudentSpec(name="dive-T3-p0.5-a0.9", method="dive", teacher="rnd", tau=3.0,
                    power=0.5, alpha=0.9, lr=0.1, **common),
    ]  # fmt: skip


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Run folders ``seed0``, ``seed1`` of ``softlabels distill`` (never modified)."""
    root = tmp_path_factory.mktemp("report-runs")
    cache = root / "cache.slc"
    optim = OptimConfig(lr=0.05)
    cfg = TrainConfig(
        dataset=DATA, model="cnn1d", loss="bsce", epochs=1, batch_size=32, optim=optim
    )
    bsce = train(cfg, root / "teacher", device="cpu").model_path
    # "rnd" has no model file: distill reports it "model not available" in every run.
    teachers = (TeacherSpec("bsce", bsce), TeacherSpec("rnd", "cnn1d"))
    dump(DumpConfig(dataset=DATA, teachers=teachers, chunk_size=64), str(cache), device="cpu")
    out = []
    for seed in (0, 1):
        run = root / f"seed{seed}"
        distill(str(cache), DATA, _students(seed), run, device="cpu", plots=False)
        out.append(run)
    return out


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("report", a, b, "--json")``: the typer app in-process, stderr kept apart."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke
