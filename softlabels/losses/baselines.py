"""Baseline losses (METHODS §3): CE, balanced softmax (BSCE), LDAM, effective-number weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softlabels.losses._checks import check_counts, check_positive, log_prior
from softlabels.losses._labels import MixedLabels, hard_ce, per_label
from softlabels.losses._registry import register_loss

__all__ = ["bsce", "ce", "effective_number_weights", "ldam"]


@register_loss("ce", summary="cross-entropy")
def ce(*, student_logits: torch.Tensor, labels: torch.Tensor, **_: object) -> torch.Tensor:
    """Cross-entropy ``CE(z_s, y)``, mean over the batch."""
    return hard_ce(student_logits, labels)


@register_loss(
    "bsce", defaults={"tau_bc": 1.0}, summary="balanced softmax / logit-adjusted cross-entropy"
)
def bsce(
    *,
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    class_counts: torch.Tensor,
    tau_bc: float = 1.0,
    **_: object,
) -> torch.Tensor:
    """Balanced softmax: ``CE(z_s + tau_bc * log pi, y)``; predict with plain ``argmax z_s``."""
    counts = check_counts(class_counts, student_logits.shape[1])
    return hard_ce(student_logits + tau_bc * log_prior(counts, student_logits), labels)


def effective_number_weights(class_counts: torch.Tensor, beta: float = 0.9999) -> torch.Tensor:
    """``w_c = (1 - beta) / (1 - beta ** n_c)``, rescaled so that ``sum_c w_c = C``."""
    if not 0.0 <= beta < 1.0:
        from softlabels.errors import UsageError

        raise UsageError(f"Expected beta in [0, 1), got {beta}")
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (w / w.sum() * len(counts)).float()


@register_loss(
    "ldam",
    defaults={"max_margin": 0.5, "scale": 30.0},
    summary="label-distribution-aware margin loss",
)
def ldam(
    *,
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    class_counts: torch.Tensor,
    max_margin: float = 0.5,
    scale: float = 30.0,
    **_: object,
) -> torch.Tensor:
    """LDAM (Cao et al. 2019): margins ``m_c ∝ n_c^{-1/4}`` (largest = ``max_margin``) taken
    off the true-class logit, then ``CE(scale * z, y)``. Use with a cosine classifier or
    normalised logits, as in the paper."""
    counts = check_counts(class_counts, student_logits.shape[1]).to(
        student_logits.device, torch.float64
    )
    check_positive("scale", scale)
    m = 1.0 / counts.pow(0.25)
    m = (m * (max_margin / m.max())).to(student_logits.dtype)
    if isinstance(labels, MixedLabels):  # the margin is the label's: one CE per label

        def term(y: torch.Tensor) -> torch.Tensor:
            margin = F.one_hot(y, student_logits.shape[1]).to(student_logits.dtype) * m[None, :]
            return F.cross_entropy(scale * (student_logits - margin), y, reduction="none")

        return per_label(term, labels).mean()
    adjusted = (
        student_logits
        - F.one_hot(labels, student_logits.shape[1]).to(student_logits.dtype) * m[None, :]
    )
    return F.cross_entropy(scale * adjusted, labels)
