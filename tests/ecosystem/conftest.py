"""Fixtures of the ecosystem tests (a cache used from outside softlabels' own commands):
a seeded teacher and its caches (2 epoch-aligned views, 3 random views, clean)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from softlabels_ecosystem_helpers import CLASSES, DATA

from softlabels.models import create_model, save_checkpoint
from softlabels.teachers import DumpConfig, TeacherSpec, dump


@pytest.fixture(scope="session")
def teacher_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random ``cnn1d`` teacher (its outputs differ from view to view)."""
    model = create_model("cnn1d", num_classes=CLASSES, in_channels=1, seed=3)
    return save_checkpoint(tmp_path_factory.mktemp("eco-teacher") / "model.pt", model)


def _dump(root: Path, teacher: Path, views: int, **kw: Any) -> str:
    out = root / f"cache-v{views}.slc"
    config = DumpConfig(
        dataset=DATA, teachers=(TeacherSpec("t", str(teacher)),), views=views, chunk_size=64, **kw
    )
    dump(config, str(out), device="cpu")
    return str(out)


@pytest.fixture(scope="session")
def views_cache(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    """Teacher ``t``: 2 epoch-aligned augmented views, float16 logits and features."""
    return _dump(tmp_path_factory.mktemp("eco-views"), teacher_path, 2)


@pytest.fixture(scope="session")
def mixed_cache(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    """Teacher ``t``: 2 epoch-aligned views, mixed (Mixup and CutMix, P = 0.7)."""
    root = tmp_path_factory.mktemp("eco-mixed")
    return _dump(root, teacher_path, 2, mixup=0.4, cutmix=1.0, mix_prob=0.7)


@pytest.fixture(scope="session")
def random_cache(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    """Teacher ``t``: 3 augmented views under the random schedule, seed 5."""
    return _dump(tmp_path_factory.mktemp("eco-random"), teacher_path, 3, schedule="random", seed=5)


@pytest.fixture(scope="session")
def clean_cache(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    return _dump(tmp_path_factory.mktemp("eco-clean"), teacher_path, 0)
