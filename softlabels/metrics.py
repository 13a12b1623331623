"""Evaluation metrics shared by every command: accuracy, per-class accuracy, shot groups, ECE.

Shot groups follow METHODS §2: many ``n > 100``, medium ``20 <= n <= 100``, few ``n < 20``
(by training count); a group's score is the mean of its classes' accuracies. When one of
them is empty (small datasets), relative thirds (head / middle / tail of the classes
sorted by training count) become the reported definition, and the result says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ABSOLUTE_GROUPS",
    "THIRDS",
    "evaluate_logits",
    "expected_calibration_error",
    "group_accuracies",
    "per_class_accuracy",
    "shot_groups",
    "thirds_groups",
]

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


def group_definition(counts: np.ndarray, groups: str = "auto") -> str:
    """``absolute`` unless a shot group is empty (then ``thirds``); or the forced choice."""
    if groups in ("absolute", "thirds"):
        return groups
    if groups != "auto":
        raise ValueError(f"Expected groups auto, absolute or thirds, got {groups!r}")
    present = set(shot_groups(counts).tolist())
    return "absolute" if all(g in present for g in ABSOLUTE_GROUPS) else "thirds"


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy of each class over its test samples (NaN for a class with none)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    total = np.bincount(labels, minlength=num_classes).astype(np.float64)
    hits = np.bincount(labels[pred == labels], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def group_accuracies(
    per_class: np.ndarray, counts: np.ndarray, groups: str = "auto"
) -> dict[str, Any]:
    """Mean per-class accuracy of each group, with the definition used.

    Always holds the absolute groups (``None`` where a group is empty); holds the thirds
    too when they are the reported definition.
    """
    per_class, counts = np.asarray(per_class, dtype=np.float64), np.asarray(counts)
    definition = group_definition(counts, groups)

    def means(names: np.ndarray, keys: tuple[str, ...]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for k in keys:
            vals = per_class[(names == k) & ~np.isnan(per_class)]
            out[k] = float(vals.mean()) if len(vals) else None
        return out

    result: dict[str, Any] = {"definition": definition}
    result.update(means(shot_groups(counts), ABSOLUTE_GROUPS))
    if definition == "thirds":
        result.update(means(thirds_groups(counts), THIRDS))
    return result


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """ECE over ``n_bins`` equal-width confidence bins: sum_b |B|/N * |acc(B) - conf(B)|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return 0.0
    # Bin b holds (b/n, (b+1)/n]; confidence 0 goes to the first bin.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _softmax(logits: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
    return np.nan_to_num(p, nan=0.0)


def evaluate_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    train_counts: np.ndarray,
    *,
    groups: str = "auto",
    n_bins: int = 15,
) -> dict[str, Any]:
    """Top-1, per-class accuracy, group accuracies and ECE of predictions ``argmax logits``."""
    # NaN/Inf logits (a broken model) count as wrong predictions with confidence 0.
    logits = np.nan_to_num(np.asarray(logits, dtype=np.float64), nan=-np.inf)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = logits.shape[1]
    pred = logits.argmax(axis=1)
    correct = pred == labels
    per_class = per_class_accuracy(pred, labels, num_classes)
    probs = _softmax(logits)
    return {
        "top1": float(correct.mean()) if len(labels) else 0.0,
        "per_class": [None if np.isnan(a) else float(a) for a in per_class],
        "groups": group_accuracies(per_class, train_counts, groups),
        "ece": expected_calibration_error(probs.max(axis=1), correct, n_bins),
        "num_samples": len(labels),
    }
