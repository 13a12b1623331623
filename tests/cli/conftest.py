"""Fixtures of the CLI tests: the typer app in-process and a small reference cache."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from softlabels_cli_helpers import BATCH, CHUNK, DATASET
from typer.testing import CliRunner, Result

from softlabels.cli.app import app
from softlabels.data import load_dataset
from softlabels.teachers import DumpConfig, dump, parse_teacher


@pytest.fixture(scope="session")
def dataset() -> Any:
    return load_dataset(DATASET)


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete clean float16 cache of ``a=cnn1d`` (never modified: use ``cache``)."""
    out = tmp_path_factory.mktemp("cli-reference") / "ref.slc"
    config = DumpConfig(
        dataset=DATASET,
        teachers=(parse_teacher("a=cnn1d"),),
        chunk_size=CHUNK,
        batch_size=BATCH,
    )
    dump(config, str(out), device="cpu")
    return out


@pytest.fixture
def cache(reference: Path, tmp_path: Path) -> Path:
    """A private copy of the reference cache, free to damage."""
    dst = tmp_path / "cache.slc"
    shutil.copytree(reference, dst)
    return dst


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("verify", path, "--json")``: the typer app in-process, stderr kept apart."""
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke
