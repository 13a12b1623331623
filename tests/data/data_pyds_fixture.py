"""Datasets for the ``py:MODULE:CALLABLE`` tests (imported by spec from test_data_pyspec)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import TensorDataset

__all__ = ["BadItems", "pair", "single", "weird"]


class _Named(TensorDataset):
    classes: ClassVar[list[str]] = ["zero", "one", "two"]


def single(n: int = 6, scale: float = 1.0, shuffle: bool = False) -> TorchDataset[Any]:
    """One dataset (no test split) with a ``classes`` attribute."""
    x = torch.arange(n * 4, dtype=torch.float64).reshape(n, 2, 2) * scale
    y = torch.arange(n) % 3
    if shuffle:
        y = y.flip(0)
    return _Named(x, y)


def pair(n_train: int = 5, tag: str = "a") -> dict[str, Any]:
    """A dict with train and test; numpy inputs, plain int labels."""

    class _List(TorchDataset[Any]):
        def __init__(self, n: int, offset: int) -> None:
            self.n, self.offset = n, offset

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return np.full(3, i + self.offset, dtype=np.int16), (i + self.offset) % 2

    return {"train": _List(n_train, 0), "test": _List(2, 100), "tag": tag}


class BadItems(TorchDataset[Any]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[str, int]:
        return "not a tensor", 0


def weird(kind: str = "pil") -> Any:
    if kind == "strings":
        return BadItems()
    if kind == "nolen":
        return iter([])
    if kind == "shapes":
        return [(torch.zeros(2), 0), (torch.zeros(3), 1)]
    if kind == "float_label":
        return [(torch.zeros(2), 0.5)]
    return {"test": []}
