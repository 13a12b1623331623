"""Evaluation metrics shared by every command: accuracy, per-class accuracy, shot groups, ECE.

Shot groups follow METHODS §2: many ``n > 100``, medium ``20 <= n <= 100``, few ``n < 20``
(by training count). When a group is empty, relative thirds (head / middle / tail of the
classes sorted by count) are reported too, and the result says which definition it used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ABSOLUTE_GROUPS", "THIRDS", "shot_groups", "thirds_groups"]

ABSOLUTE_GROUPS = ("many", "medium", "few")
THIRDS = ("head", "middle", "tail")


def shot_groups(counts: np.ndarray) -> np.ndarray:
    """Absolute shot group name of each class from its training count."""
    counts = np.asarray(counts)
    return np.where(counts > 100, "many", np.where(counts >= 20, "medium", "few"))


def thirds_groups(counts: np.ndarray) -> np.ndarray:
    """Relative groups: classes sorted by count (descending, ties by class id), split in thirds."""
    counts = np.asarray(counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    out = np.empty(len(counts), dtype=object)
    for name, part in zip(THIRDS, np.array_split(order, 3), strict=True):
        out[part] = name
    return out.astype(str)
