"""Datasets from user code: ``py:MODULE:CALLABLE[:key=value,...]``.

The callable is called with the spec's options as keyword arguments (values parsed to int,
float or bool when they look like one, or to the type of the parameter's default). It
returns either a map-style ``torch.utils.data.Dataset`` of ``(input, label)`` pairs, or a
dict with ``"train"`` and ``"test"`` datasets (and optionally ``"classes"``). Class names
come from ``"classes"`` or a ``classes`` attribute of the training dataset, else they are
``"0" .. "C-1"``. Every item is read once (by indexing) and the inputs are stacked into a
float32 array kept in memory. Without a test dataset the test split is the training data
(ids ``train/<i>`` in both). Family ``"generic"``, recipe ``{"kind": "none"}``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from softlabels.data._base import Dataset, Split
from softlabels.data._spec import DatasetSpec, resolve_callable
from softlabels.data.augment import NONE_RECIPE
from softlabels.errors import UsageError

__all__ = ["build_python_dataset", "materialise"]


def _input(value: Any, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float32).numpy()
    if isinstance(value, np.ndarray) and (
        np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_
    ):
        return value.astype(np.float32)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return np.asarray(value, dtype=np.float32)
    raise UsageError(
        f"Expected a tensor or numeric array input, got {type(value).__name__} (at {where}); "
        "add a transform that returns tensors (e.g. ToTensor())"
    )


def _label(value: Any, where: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value.item())
    if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.integer):
        return int(value.item())
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise UsageError(f"Expected an integer label, got {value!r:.60} (at {where})")


def materialise(dataset: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read every ``(input, label)`` item: (float32 [N, ...], int64 [N])."""
    try:
        n = len(dataset)
    except TypeError:
        raise UsageError(
            f"Expected a map-style dataset with __len__ and __getitem__, got "
            f"{type(dataset).__name__} (at {split})"
        ) from None
    if n == 0:
        raise UsageError(f"Expected at least one sample, got an empty dataset (at {split})")
    inputs: list[np.ndarray] = []
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        item = dataset[i]
        where = f"{split} item {i}"
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) < 2:
            raise UsageError(f"Expected an (input, label) pair, got {item!r:.60} (at {where})")
        x = _input(item[0], where)
        if inputs and x.shape != inputs[0].shape:
            raise UsageError(
                f"Expected every input of shape {inputs[0].shape}, got {x.shape} (at {where})"
            )
        inputs.append(x)
        labels[i] = _label(item[1], where)
    return np.stack(inputs), labels


def build_python_dataset(spec: str, parsed: DatasetSpec) -> Dataset:
    fn = resolve_callable(parsed.name, spec)
    result = fn(**parsed.options)
    classes: Any = None
    if isinstance(result, Mapping):
        if "train" not in result:
            raise UsageError(
                f"Expected a dict with 'train' and 'test', got keys {sorted(map(str, result))} "
                f"(from {parsed.name})"
            )
        train_ds, test_ds = result["train"], result.get("test")
        classes = result.get("classes")
    else:
        train_ds, test_ds = result, None
    if classes is None:
        classes = getattr(train_ds, "classes", None)
    train_x, train_y = materialise(train_ds, "train")
    if test_ds is None:
        test_x, test_y, test_ids = train_x, train_y, [f"train/{i}" for i in range(len(train_y))]
    else:
        test_x, test_y = materialise(test_ds, "test")
        test_ids = [f"test/{i}" for i in range(len(test_y))]
        if test_x.shape[1:] != train_x.shape[1:]:
            raise UsageError(
                f"Expected test inputs of shape {train_x.shape[1:]}, got {test_x.shape[1:]} "
                f"(from {parsed.name})"
            )
    if classes is not None:
        if isinstance(classes, str | bytes) or not isinstance(classes, Sequence):
            raise UsageError(
                f"Expected a list of class names, got {type(classes).__name__} (at classes)"
            )
        names = [str(c) for c in classes]
    else:
        names = [str(c) for c in range(int(max(train_y.max(), test_y.max())) + 1)]
    return Dataset(
        spec=spec,
        name=parsed.name,
        class_names=names,
        train=Split("train", [f"train/{i}" for i in range(len(train_y))], train_y, array=train_x),
        test=Split("test", test_ids, test_y, array=test_x),
        family="generic",
        recipe=dict(NONE_RECIPE),
    )
