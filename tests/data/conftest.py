"""Fixtures for the data tests: tiny CIFAR pickles and image trees in the real formats."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from softlabels.data import clear_dataset_cache


@pytest.fixture(autouse=True)
def _fresh_dataset_cache() -> Iterator[None]:
    clear_dataset_cache()
    yield
    clear_dataset_cache()


def _dump_like_cifar(obj: dict[bytes, Any], path: Path) -> None:
    """Pickle as the real files do: protocol 2, arrays rebuilt via numpy.core.multiarray."""
    data = pickle.dumps(obj, protocol=2)
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(data)


def source_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(parent: Path, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 layout under parent/cifar-10-batches-py; returns all train (x, y)."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    n = 10 * per_class
    rng = np.random.default_rng(1)
    y = rng.permutation(np.repeat(np.arange(10), per_class))
    x = source_images(n, 2)
    for b, rows in enumerate(np.array_split(np.arange(n), 5), start=1):
        _dump_like_cifar(
            {
                b"batch_label": f"training batch {b} of 5".encode(),
                b"labels": [int(v) for v in y[rows]],
                b"data": x[rows],
                b"filenames": [f"img_{i}.png".encode() for i in rows],
            },
            folder / f"data_batch_{b}",
        )
    ty = np.repeat(np.arange(10), 3)
    _dump_like_cifar(
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [int(v) for v in ty],
            b"data": source_images(30, 3),
            b"filenames": [b"t.png"] * 30,
        },
        folder / "test_batch",
    )
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _dump_like_cifar(
        {b"num_cases_per_batch": n // 5, b"label_names": names, b"num_vis": 3072},
        folder / "batches.meta",
    )
    return x, y


def write_cifar100(parent: Path, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    n = 100 * per_class
    y = np.random.default_rng(4).permutation(np.repeat(np.arange(100), per_class))
    x = source_images(n, 5)
    _dump_like_cifar(
        {
            b"filenames": [b"f.png"] * n,
            b"batch_label": b"training batch 1 of 1",
            b"fine_labels": [int(v) for v in y],
            b"coarse_labels": [int(v) // 5 for v in y],
            b"data": x,
        },
        folder / "train",
    )
    ty = np.arange(100).repeat(2)
    _dump_like_cifar(
        {
            b"filenames": [b"f.png"] * 200,
            b"batch_label": b"testing batch 1 of 1",
            b"fine_labels": [int(v) for v in ty],
            b"coarse_labels": [int(v) // 5 for v in ty],
            b"data": source_images(200, 6),
        },
        folder / "test",
    )
    _dump_like_cifar(
        {
            b"fine_label_names": [f"class{i:03d}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)],
        },
        folder / "meta",
    )
    return x, y


@pytest.fixture
def cifar_writers() -> dict[str, Callable[[Path, int], tuple[np.ndarray, np.ndarray]]]:
    return {"cifar10": write_cifar10, "cifar100": write_cifar100}


def write_png(path: Path, width: int, height: int, value: int) -> None:
    """A small RGB PNG: a horizontal ramp offset by ``value`` (so files differ)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = (np.arange(width, dtype=np.int64)[None, :] * 7 + value) % 256
    arr = np.broadcast_to(ramp[:, :, None], (height, width, 3)).astype(np.uint8).copy()
    arr[..., 1] = value % 256
    Image.fromarray(arr).save(path)


@pytest.fixture
def png_writer() -> Callable[[Path, int, int, int], None]:
    return write_png
