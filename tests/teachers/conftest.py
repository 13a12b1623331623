"""Fixtures of the dump tests: a tiny long-tailed MNIST-1D, in-process CLI calls, caches."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from softlabels_teachers_helpers import DATASET, dump_to
from typer.testing import CliRunner, Result

from softlabels.cli.app import app
from softlabels.data import load_dataset


@pytest.fixture(scope="session")
def dataset() -> Any:
    return load_dataset(DATASET)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted clean float16 dump of ``a=cnn1d`` (never modified: copy it)."""
    out = tmp_path_factory.mktemp("reference") / "ref.slc"
    dump_to(out)
    return out


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(src: Path) -> Path:
        dst = tmp_path / f"copy-{src.name}"
        shutil.copytree(src, dst)
        return dst

    return copy


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("dump", "--dataset", ...)``: the typer app in-process (stderr kept apart)."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke
