"""Hyper-parameter validation shared by the loss functions."""

from __future__ import annotations

import math

import torch

from softlabels.errors import UsageError

__all__ = ["ClassCounts", "check_alpha", "check_counts", "check_positive", "log_prior"]


def check_positive(name: str, value: float) -> float:
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"Expected a finite {name} > 0, got {value}")
    return float(value)


def check_alpha(value: float, name: str = "alpha") -> float:
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"Expected {name} in [0, 1], got {value}")
    return float(value)


class ClassCounts:
    """Training counts per class, checked once (shape and > 0) where they are made.

    A training step builds one and passes it as ``class_counts`` on every call, so the
    loss functions skip the value check, which would be a host-device sync per step on a
    GPU (``(counts <= 0).any()`` needs the result on the host).
    """

    def __init__(self, class_counts: torch.Tensor, num_classes: int) -> None:
        self.tensor = check_counts(class_counts, num_classes)
        self.num_classes = num_classes


def check_counts(class_counts: torch.Tensor | ClassCounts | None, num_classes: int) -> torch.Tensor:
    if isinstance(class_counts, ClassCounts):
        if class_counts.num_classes != num_classes:
            raise UsageError(
                f"Expected class_counts of shape ({num_classes},), got ({class_counts.num_classes},)"
            )
        return class_counts.tensor
    if class_counts is None:
        raise UsageError("Expected class_counts (training count per class), got None")
    counts = torch.as_tensor(class_counts)
    if counts.shape != (num_classes,):
        raise UsageError(
            f"Expected class_counts of shape ({num_classes},), got {tuple(counts.shape)}"
        )
    if (counts <= 0).any():
        raise UsageError(
            "Expected every class to have at least one training sample (class_counts > 0)"
        )
    return counts


def log_prior(class_counts: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """log pi_c = log(n_c / N), on ``like``'s device and dtype."""
    counts = class_counts.to(device=like.device, dtype=torch.float64)
    return torch.log(counts / counts.sum()).to(like.dtype)
