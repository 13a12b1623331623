"""Fixtures of the reliability suite: uninterrupted reference dumps, private copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from softlabels_reliability_faults import DATASET, dump_args, invoke


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``reference(kind)``: an uninterrupted dump of that kind (made once; never modify it)."""
    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("reliability-reference")

    def get(kind: str) -> Path:
        if kind not in made:
            out = root / f"{kind}.slc"
            result = invoke(*dump_args(out, kind), "--json")
            assert result.exit_code == 0, result.stderr
            made[kind] = out
        return made[kind]

    return get


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    """A private copy of a cache, free to damage."""

    def copy(src: Path) -> Path:
        dst = tmp_path / f"copy-{src.name}"
        shutil.copytree(src, dst)
        return dst

    return copy


PLAN = """
[defaults]
model = "cnn1d"
method = "kd"
teacher = "a"
epochs = 2
batch_size = 32
data_seed = 0

[[student]]
name = "steady"

[[student]]
name = "wild"
lr = 1e12
momentum = 0.0
"""


@pytest.fixture(scope="session")
def plan_run(reference: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One distill of a plan with a normal student and one with lr 1e12 (never modify)."""
    root = tmp_path_factory.mktemp("plan-run")
    plan = root / "plan.toml"
    plan.write_text(PLAN)
    args = [
        "distill",
        str(reference("views")),
        "--dataset",
        DATASET,
        "--plan",
        str(plan),
        "--out",
        str(root / "run"),
        "--device",
        "cpu",
        "--no-plots",
    ]
    result = invoke(*args)
    return {"args": args, "out": root / "run", "result": result}
