"""Fixtures of the wiring tests: a BN-free teacher that students can *be*, its float32
3-view cache, and the real ``softlabels`` Typer app in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from softlabels_wiring_helpers import CLASSES, DATA, SEED, SIGNAL
from typer.testing import CliRunner, Result

from softlabels.cli.app import app
from softlabels.data import load_dataset
from softlabels.models import create_model, save_checkpoint
from softlabels.teachers import DumpConfig, TeacherSpec, dump


@pytest.fixture(scope="session")
def dataset() -> Any:
    return load_dataset(DATA)


@pytest.fixture(scope="session")
def mlp_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random ``mlp`` (no batch norm, no dropout): a distill student with
    ``model = "mlp"`` and ``seed = SEED`` starts with exactly these weights."""
    model = create_model("mlp", num_classes=CLASSES, in_channels=1, in_features=SIGNAL, seed=SEED)
    return save_checkpoint(tmp_path_factory.mktemp("wiring-teacher") / "model.pt", model)


@pytest.fixture(scope="session")
def views_cache(tmp_path_factory: pytest.TempPathFactory, mlp_teacher: Path) -> str:
    """Teacher ``t`` = ``mlp_teacher``: 3 augmented views, float32 logits and features.
    Never modified: tests that write into a cache use ``views_cache_copy``."""
    out = tmp_path_factory.mktemp("wiring-cache") / "v3.slc"
    config = DumpConfig(
        dataset=DATA,
        teachers=(TeacherSpec("t", str(mlp_teacher)),),
        views=3,
        dtype="float32",
        chunk_size=64,
    )
    dump(config, str(out), device="cpu")
    return str(out)


@pytest.fixture
def views_cache_copy(views_cache: str, tmp_path: Path) -> str:
    dst = tmp_path / "copy.slc"
    shutil.copytree(views_cache, dst)
    return str(dst)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("train", ...)``: the real application (``softlabels.cli.app.app``) in-process."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke
