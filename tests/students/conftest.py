"""A small cache (two teachers, 2 augmented views) shared by the distill tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from softlabels.engine.optim import OptimConfig
from softlabels.teachers import DumpConfig, TeacherSpec, dump
from softlabels.teachers.train import TrainConfig, train

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"


@pytest.fixture(scope="session")
def teacher_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    cfg = TrainConfig(
        dataset=DATA,
        model="cnn1d",
        loss="bsce",
        epochs=2,
        batch_size=32,
        optim=OptimConfig(lr=0.05),
    )
    return Path(train(cfg, out, device="cpu").model_path)


def _dump(root: Path, teacher: Path, views: int) -> str:
    out = root / f"cache-v{views}.slc"
    cfg = DumpConfig(
        dataset=DATA,
        teachers=(TeacherSpec("bsce", str(teacher)), TeacherSpec("rnd", "cnn1d")),
        views=views,
        chunk_size=64,
    )
    dump(cfg, str(out), device="cpu")
    return str(out)


@pytest.fixture(scope="session")
def cache_views(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    return _dump(tmp_path_factory.mktemp("cv"), teacher_path, views=2)


@pytest.fixture(scope="session")
def cache_clean(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    return _dump(tmp_path_factory.mktemp("cc"), teacher_path, views=0)
