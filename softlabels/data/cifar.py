"""CIFAR-10-LT and CIFAR-100-LT from the standard "python version" pickle files.

Spec keys: ``root`` (required; the folder ``cifar-10-batches-py`` / ``cifar-100-python``
or its parent), ``imb`` (imbalance ratio, default 100), ``seed`` (long-tailed selection,
default 0). The training set is the standard exponential long-tailed subset
(:func:`~softlabels.data.longtail.select_longtail`) in source order; the test set is the
full balanced test set. Sample ids are ``train/<source index>`` and ``test/<source index>``.

The files are read with a restricted unpickler that only rebuilds plain containers and
NumPy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from softlabels.data._base import Dataset, Split
from softlabels.data._registry import register_dataset
from softlabels.data._spec import REQUIRED
from softlabels.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    small_image_recipe,
)
from softlabels.data.longtail import select_longtail
from softlabels.errors import SpecError, UsageError

__all__ = ["cifar10_lt", "cifar100_lt", "load_cifar", "read_cifar_pickle"]

_FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR file")
        mod = __import__(target[0], fromlist=[target[1]])
        return getattr(mod, target[1])


def read_cifar_pickle(path: Path) -> dict[bytes, Any]:
    """Load one CIFAR pickle (``encoding='bytes'``: keys are bytes)."""
    if not path.is_file():
        raise SpecError(f"Missing CIFAR file {str(path)!r}; check root (at root)")
    try:
        with open(path, "rb") as f:
            data = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise UsageError(f"Cannot read CIFAR file {str(path)!r} ({err}); re-download it") from err
    if not isinstance(data, dict):
        raise UsageError(f"Expected a dict in {str(path)!r}, got {type(data).__name__}")
    return data


def _folder(root: str, num_classes: int) -> Path:
    name = _FOLDERS[num_classes]
    path = Path(root).expanduser()
    if not path.is_dir():
        raise SpecError(
            f"Expected root to be a directory holding {name}/, got {str(path)!r} (at root)"
        )
    if path.name != name and (path / name).is_dir():
        path = path / name
    return path


def _images_labels(
    data: dict[bytes, Any], label_key: bytes, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    try:
        images = np.asarray(data[b"data"], dtype=np.uint8)
        labels = np.asarray(data[label_key], dtype=np.int64)
    except KeyError as err:
        raise UsageError(f"Expected key {err.args[0]!r} in CIFAR file {str(path)!r}") from None
    if images.ndim != 2 or images.shape[1] != 3072 or len(images) != len(labels):
        raise UsageError(
            f"Expected data uint8 [N, 3072] and N labels, got {images.shape} and "
            f"{labels.shape} (in {str(path)!r})"
        )
    return images.reshape(-1, 3, 32, 32), labels


def load_cifar(root: str, num_classes: int) -> tuple[list[str], tuple[np.ndarray, ...]]:
    """Class names and (train images, train labels, test images, test labels), source order."""
    folder = _folder(root, num_classes)
    if num_classes == 10:
        meta = read_cifar_pickle(folder / "batches.meta")
        names_key, label_key = b"label_names", b"labels"
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_file = folder / "test_batch"
    else:
        meta = read_cifar_pickle(folder / "meta")
        names_key, label_key = b"fine_label_names", b"fine_labels"
        train_files = [folder / "train"]
        test_file = folder / "test"
    if names_key not in meta:
        raise UsageError(f"Expected key {names_key!r} in the CIFAR meta file in {str(folder)!r}")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    parts = [_images_labels(read_cifar_pickle(p), label_key, p) for p in train_files]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _images_labels(read_cifar_pickle(test_file), label_key, test_file)
    if len(names) != num_classes:
        raise UsageError(
            f"Expected {num_classes} class names, got {len(names)} (in {str(folder)!r})"
        )
    return names, (train_x, train_y, test_x, test_y)


def _build(spec: str, num_classes: int, root: str, imb: int, seed: int) -> Dataset:
    if imb < 1:
        raise SpecError(f"Expected imb >= 1, got {imb} (at imb)")
    names, (train_x, train_y, test_x, test_y) = load_cifar(root, num_classes)
    for split, y in (("train", train_y), ("test", test_y)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            bad = int(y[(y < 0) | (y >= num_classes)][0])
            raise UsageError(
                f"Expected labels in [0, {num_classes}), got {bad} (in the CIFAR {split} data)"
            )
    keep = select_longtail(train_y, imb, seed=seed, num_classes=num_classes)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if num_classes == 10 else (CIFAR100_MEAN, CIFAR100_STD)
    return Dataset(
        spec=spec,
        name=f"cifar{num_classes}-lt",
        class_names=names,
        train=Split(
            name="train",
            ids=[f"train/{i}" for i in keep.tolist()],
            labels=train_y[keep],
            array=np.ascontiguousarray(train_x[keep]),
        ),
        test=Split(
            name="test",
            ids=[f"test/{i}" for i in range(len(test_y))],
            labels=test_y,
            array=np.ascontiguousarray(test_x),
        ),
        family="image",
        recipe=small_image_recipe(mean, std, pad=4, flip=True),
    )


@register_dataset("cifar10-lt", defaults={"root": REQUIRED, "imb": 100, "seed": 0})
def cifar10_lt(spec: str, root: str, imb: int, seed: int) -> Dataset:
    """CIFAR-10-LT: 10 classes, 5000 ... 5000/imb training images, 10,000 test images."""
    return _build(spec, 10, root, imb, seed)


@register_dataset("cifar100-lt", defaults={"root": REQUIRED, "imb": 100, "seed": 0})
def cifar100_lt(spec: str, root: str, imb: int, seed: int) -> Dataset:
    """CIFAR-100-LT: 100 classes, 500 ... 500/imb training images, 10,000 test images."""
    return _build(spec, 100, root, imb, seed)
