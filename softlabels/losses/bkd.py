"""Balanced knowledge distillation (Zhang et al., Neurocomputing 2023; METHODS §6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softlabels.losses._checks import check_counts, check_positive
from softlabels.losses._kl import tempered_kl
from softlabels.losses._registry import register_loss
from softlabels.losses.baselines import effective_number_weights

__all__ = ["bkd", "bkd_target_log"]


def bkd_target_log(teacher_logits: torch.Tensor, tau: float, weights: torch.Tensor) -> torch.Tensor:
    """``log normalize(w * softmax_T(z_t))``, from logs."""
    logw = torch.log(weights.to(teacher_logits.device, torch.float32))
    s = logw[None, :] + F.log_softmax(teacher_logits.float() / tau, dim=-1)
    return s - torch.logsumexp(s, dim=-1, keepdim=True)


@register_loss(
    "bkd",
    needs_teacher=True,
    defaults={"tau": 2.0, "alpha": 1.0, "beta": 0.9999},
    summary="Balanced KD (re-weighted KL)",
)
def bkd(
    *,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    class_counts: torch.Tensor,
    tau: float = 2.0,
    alpha: float = 1.0,
    beta: float = 0.9999,
    class_weights: torch.Tensor | None = None,
    **_: object,
) -> torch.Tensor:
    """``CE(z_s, y) + a T^2 KL(normalize(w * softmax_T(z_t)) || softmax_T(z_s))``.

    ``w`` are effective-number weights of ``class_counts`` (``beta``) unless
    ``class_weights`` is given (all ones = plain KD target: deferred re-weighting).
    CE is unweighted, as in the reference code; ``alpha`` is not limited to [0, 1].
    """
    tau = check_positive("tau", tau)
    if alpha < 0:
        from softlabels.errors import UsageError

        raise UsageError(f"Expected alpha >= 0, got {alpha}")
    counts = check_counts(class_counts, student_logits.shape[1])
    w = class_weights if class_weights is not None else effective_number_weights(counts, beta)
    return tempered_kl(  # the CE fused in
        bkd_target_log(teacher_logits, tau, w),
        student_logits.float(),
        tau,
        kl_weight=alpha,
        labels=labels,
    )
