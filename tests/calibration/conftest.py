"""Fixtures of the calibration tests: tiny float32 clean caches and the command in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from softlabels_calibration_helpers import BATCH, CHUNK, DATASET
from typer.testing import CliRunner, Result

from softlabels.data import load_dataset
from softlabels.models import create_model, save_checkpoint
from softlabels.teachers import DumpConfig, dump, parse_teacher


@pytest.fixture(scope="session")
def dataset() -> Any:
    return load_dataset(DATASET)


def _dump(out: Path, *teachers: str, **kw: Any) -> Path:
    kw.setdefault("dtype", "float32")
    config = DumpConfig(
        dataset=DATASET,
        teachers=tuple(parse_teacher(t) for t in teachers),
        chunk_size=CHUNK,
        batch_size=BATCH,
        **kw,
    )
    dump(config, str(out), device="cpu")
    return out


@pytest.fixture(scope="session")
def cosine_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random cnn1d with a cosine classifier (scale 16), saved as a checkpoint."""
    model = create_model(
        "cnn1d", num_classes=10, in_channels=1, classifier="cosine", cosine_scale=16.0, seed=3
    )
    return save_checkpoint(tmp_path_factory.mktemp("cosine") / "model.pt", model)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory, cosine_checkpoint: Path) -> Path:
    """Clean float32 cache: ``a`` = seeded random cnn1d (linear), ``cos`` = cosine cnn1d.
    Never modified: tests that write use ``cache``."""
    out = tmp_path_factory.mktemp("calibration") / "ref.slc"
    return _dump(out, "a=cnn1d", f"cos={cosine_checkpoint}")


@pytest.fixture
def cache(reference: Path, tmp_path: Path) -> Path:
    """A private copy of the reference cache."""
    dst = tmp_path / "cache.slc"
    shutil.copytree(reference, dst)
    return dst


@pytest.fixture(scope="session")
def no_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float16 cache of ``a=cnn1d`` dumped with --no-features."""
    out = tmp_path_factory.mktemp("nofeat") / "nofeat.slc"
    return _dump(out, "a=cnn1d", features=False, dtype="float16")


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("calibrate", path, ...)`` on a local app holding the cache and calibrate commands
    (the lead wires ``calibrate_cmds`` into ``softlabels.cli.app``)."""
    from softlabels.cli import cache_cmds, calibrate_cmds

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _main() -> None:
        """softlabels (calibration tests)"""

    cache_cmds.register(app)
    calibrate_cmds.register(app)
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke
