"""Exponential long-tailed profiles and the standard CIFAR-LT selection rule (METHODS §1).

``n_i = int(n_max * (1 / imb) ** (i / (C - 1)))`` for class ``i`` (class 0 is the head).
Selection seeds one ``np.random.RandomState`` and, for the classes in ascending order,
shuffles that class's indices (in source order) and keeps the first ``n_i``; the RNG state
carries over from class to class. With this rule CIFAR-100 imb=100 keeps 10,847 images,
imb=50 keeps 12,608, and CIFAR-10 imb=100 keeps 12,406.
"""

from __future__ import annotations

import numpy as np

from softlabels.errors import UsageError

__all__ = ["hold_out_per_class", "longtail_counts", "select_longtail"]


def longtail_counts(n_max: int, num_classes: int, imb: float) -> list[int]:
    """Per-class training counts of the exponential profile, head first."""
    if int(num_classes) != num_classes or num_classes < 1:
        raise UsageError(f"Expected num_classes >= 1, got {num_classes!r} (at num_classes)")
    if int(n_max) != n_max or n_max < 1:
        raise UsageError(f"Expected n_max >= 1, got {n_max!r} (at n_max)")
    if not imb >= 1:  # also rejects NaN
        raise UsageError(f"Expected an imbalance ratio >= 1, got {imb!r} (at imb)")
    c = int(num_classes)
    if c == 1:
        return [int(n_max)]
    return [int(n_max * (1 / imb) ** (i / (c - 1))) for i in range(c)]


def select_longtail(
    labels: np.ndarray,
    imb: float,
    seed: int = 0,
    n_max: int | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """Source indices kept by the long-tailed selection, sorted ascending.

    ``labels`` are the balanced source labels (int, ``0 .. C-1``). ``num_classes`` defaults
    to ``max(labels) + 1``; ``n_max`` defaults to the smallest class count, so every class
    can supply its full quota. A class with fewer samples than its quota keeps them all.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise UsageError(f"Expected labels of shape [N], got {labels.shape} (at labels)")
    if len(labels) == 0:
        raise UsageError("Expected at least one label, got an empty array (at labels)")
    if labels.min() < 0:
        raise UsageError(f"Expected labels >= 0, got {int(labels.min())} (at labels)")
    c = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if int(labels.max()) >= c:
        raise UsageError(f"Expected labels < {c}, got {int(labels.max())} (at labels)")
    if n_max is None:
        n_max = int(np.bincount(labels.astype(np.int64), minlength=c).min())
        if n_max == 0:
            raise UsageError(
                "Expected every class in the source labels, got a class with none; "
                "pass n_max explicitly"
            )
    counts = longtail_counts(n_max, c, imb)
    rng = np.random.RandomState(seed)
    kept: list[np.ndarray] = []
    for cls, n in enumerate(counts):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        kept.append(idx[:n])
    return np.sort(np.concatenate(kept)).astype(np.int64)


def hold_out_per_class(
    labels: np.ndarray, n_test: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, remaining indices), both ascending: the first ``n_test`` samples of
    every class in source order are held out as a balanced test set."""
    labels = np.asarray(labels)
    test = np.zeros(len(labels), dtype=bool)
    for cls in range(int(num_classes)):
        test[np.flatnonzero(labels == cls)[: int(n_test)]] = True
    return np.flatnonzero(test), np.flatnonzero(~test)
