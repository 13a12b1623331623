"""Fixtures of the analysis tests: small synthetic caches built with the store layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from softlabels_analysis_helpers import long_tail_counts, make_cache, random_logits

# 12 classes, 150 ... 1 per class: many, medium and few are all present.
C = 12
COUNTS = long_tail_counts(C, 150, 150)


@pytest.fixture(scope="session")
def lt_labels() -> np.ndarray:
    return np.repeat(np.arange(C), COUNTS)


@pytest.fixture(scope="session")
def lt_logits(lt_labels: np.ndarray) -> dict[str, np.ndarray]:
    n = len(lt_labels)
    return {
        "a": random_logits(n, 2, C, lt_labels, seed=0),
        "b": random_logits(n, 2, C, lt_labels, seed=1, scale=2.0),
    }


@pytest.fixture(scope="session")
def lt_reference(
    tmp_path_factory: pytest.TempPathFactory,
    lt_labels: np.ndarray,
    lt_logits: dict[str, np.ndarray],
) -> Path:
    """Two teachers a, b; N = sum(COUNTS), V = 2, float32, chunks of 64 (never modified)."""
    out = tmp_path_factory.mktemp("analysis") / "lt.slc"
    make_cache(out, lt_logits, lt_labels, chunk_size=64)
    return out


@pytest.fixture
def lt_cache(lt_reference: Path, tmp_path: Path) -> Path:
    """A private copy of the reference cache, free to modify."""
    import shutil

    dst = tmp_path / "lt.slc"
    shutil.copytree(lt_reference, dst)
    return dst


@pytest.fixture
def small(tmp_path: Path) -> dict[str, Any]:
    """37 samples x 2 views x 7 classes, float16, chunks of 8 (last chunk partial)."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 7, size=37)
    z = (rng.normal(size=(37, 2, 7)) * 4).astype(np.float16)
    url = make_cache(tmp_path / "small.slc", {"t": z}, labels, dtype="float16")
    return {"url": url, "logits": z, "labels": labels}
