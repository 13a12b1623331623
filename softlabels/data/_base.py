"""The dataset abstraction every other part of softlabels works against.

A :class:`Dataset` has a train and a test :class:`Split`. A split has a deterministic order
(row i is always the same sample), stable sample ids, integer labels and a fingerprint.
Inputs come in two steps so that augmentation can run batched on any device:

* ``split.load(indices)`` returns *raw* inputs for those rows as one tensor (uint8 images
  ``[B, C, H, W]`` at the dataset's base size, or float32 signals ``[B, 1, L]``);
* ``dataset.clean(raw)`` applies the evaluation transform and normalisation, and
  ``dataset.augment(raw, seeds)`` applies the seeded training augmentation and
  normalisation. The same seed always gives the same view, in a batch of any composition
  and on any device (see :mod:`softlabels.data.augment`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from softlabels.data.augment import augment as augment_batch
from softlabels.data.augment import clean as clean_batch

__all__ = ["Dataset", "Split", "fingerprint"]


def fingerprint(ids: Sequence[str], labels: np.ndarray) -> str:
    """sha256 over sample ids and labels in order: what makes a cache belong to a dataset."""
    h = hashlib.sha256()
    h.update(f"n={len(ids)};".encode())
    for sid, lab in zip(ids, np.asarray(labels).tolist(), strict=True):
        h.update(f"{sid}\t{int(lab)}\n".encode())
    return h.hexdigest()


@dataclass
class Split:
    """One split (train or test) of a dataset in its deterministic order."""

    name: str
    ids: list[str]
    labels: np.ndarray  # int64 [N]
    # Either the whole raw input array (small datasets, kept in memory) ...
    array: np.ndarray | None = None
    # ... or a loader from row indices to a raw batch (file-backed datasets).
    loader: Callable[[np.ndarray], torch.Tensor] | None = None
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.ids) != len(self.labels):
            raise ValueError(
                f"Expected as many ids as labels, got {len(self.ids)} and {len(self.labels)}"
            )
        if (self.array is None) == (self.loader is None):
            raise ValueError("Expected exactly one of array or loader")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.array is not None

    def load(self, indices: np.ndarray) -> torch.Tensor:
        """Raw inputs of the given rows, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.array is not None:
            return torch.from_numpy(np.ascontiguousarray(self.array[indices]))
        assert self.loader is not None
        return self.loader(indices)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.ids, self.labels)
        return self._fingerprint


@dataclass
class Dataset:
    """A named dataset with train and test splits and its input recipe."""

    spec: str  # the canonical spec string it was built from
    name: str
    class_names: list[str]
    train: Split
    test: Split
    family: str  # "signal1d" | "image" | "generic"
    # Augmentation and normalisation recipe (JSON-able, recorded in caches and runs).
    recipe: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input (after ``clean``), without the batch dimension."""
        return tuple(self.clean(self.train.load(np.arange(1))).shape[1:])

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise ValueError(f"Expected split 'train' or 'test', got {name!r}")
        return self.train if name == "train" else self.test

    def class_counts(self, split: str = "train") -> np.ndarray:
        return np.bincount(self.split(split).labels, minlength=self.num_classes)

    def clean(self, raw: torch.Tensor) -> torch.Tensor:
        """Evaluation transform + normalisation of a raw batch (any device)."""
        return clean_batch(raw, self.recipe)

    def augment(
        self, raw: torch.Tensor, seeds: np.ndarray, strength: str = "standard"
    ) -> torch.Tensor:
        """Seeded training augmentation + normalisation of a raw batch (any device)."""
        return augment_batch(raw, seeds, self.recipe, strength=strength)
