"""Hard labels of a batch whose views may be mixed: the one place they enter the losses.

A mixed view (Mixup/CutMix, METHODS §13) of row i with partner row j and weight lam has
two labels: every hard-label term is ``lam * loss(y_i) + (1 - lam) * loss(y_j)``, per
sample, then averaged over the batch. Plain label tensors give exactly the unmixed terms
(the same calls as before, so the bits do not change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Labels", "MixedLabels", "hard_ce", "per_label", "primary_labels"]


@dataclass(frozen=True)
class MixedLabels:
    """Labels of mixed views: ``labels`` (y_i), ``partner`` (y_j; y_i where not mixed) and
    ``lam`` (float32, the share of y_i; 1 where not mixed), all ``[B]`` on one device."""

    labels: torch.Tensor
    partner: torch.Tensor
    lam: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


Labels = torch.Tensor | MixedLabels


def primary_labels(labels: Labels) -> torch.Tensor:
    """The rows' own labels y_i (for metrics and label-free uses)."""
    return labels.labels if isinstance(labels, MixedLabels) else labels


def per_label(fn: Callable[[torch.Tensor], torch.Tensor], labels: Labels) -> torch.Tensor:
    """A per-sample label term ``fn(y)`` ([B]): ``fn(y)`` for plain labels, ``lam fn(y_i) +
    (1 - lam) fn(y_j)`` for mixed ones."""
    if not isinstance(labels, MixedLabels):
        return fn(labels)
    own, other = fn(labels.labels), fn(labels.partner)
    lam = labels.lam.to(own.dtype)
    return lam * own + (1 - lam) * other


def hard_ce(logits: torch.Tensor, labels: Labels) -> torch.Tensor:
    """Cross-entropy of ``logits`` with the hard labels, batch mean (mixed: by lam)."""
    if not isinstance(labels, MixedLabels):
        return F.cross_entropy(logits, labels)
    return per_label(lambda y: F.cross_entropy(logits, y, reduction="none"), labels).mean()
