"""Bad ``py:`` datasets of the reliability tests (``py:softlabels_reliability_data:NAME``)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["label_out_of_range", "negative_label", "zero_sample_class"]


class _Signals(Dataset[Any]):
    def __init__(self, labels: list[int], classes: list[str] | None = None) -> None:
        self.labels = labels
        if classes is not None:
            self.classes = classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 40), float(i) / 10), self.labels[i]


def label_out_of_range() -> dict[str, Any]:
    """Three named classes, but label 7 on every fourth training sample."""
    return {"train": _Signals([0, 1, 2, 7] * 4, ["a", "b", "c"]), "test": _Signals([0, 1, 2])}


def negative_label() -> Any:
    return _Signals([0, 1, -1, 2] * 4)


def zero_sample_class() -> dict[str, Any]:
    """Class 'b' has test samples but no training sample."""
    return {
        "train": _Signals([0, 2, 0, 2] * 4),
        "test": _Signals([0, 1, 2]),
        "classes": ["a", "b", "c"],
    }
