"""Hinton knowledge distillation (METHODS §4)."""

from __future__ import annotations

import torch

from softlabels.losses._checks import check_alpha, check_positive
from softlabels.losses._kl import tempered_kl_logits
from softlabels.losses._registry import register_loss

__all__ = ["kd"]


@register_loss("kd", needs_teacher=True, defaults={"tau": 4.0, "alpha": 0.9}, summary="Hinton KD")
def kd(
    *,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 4.0,
    alpha: float = 0.9,
    **_: object,
) -> torch.Tensor:
    """``(1 - a) CE(z_s, y) + a T^2 KL(softmax_T(z_t) || softmax_T(z_s))``."""
    tau = check_positive("tau", tau)
    alpha = check_alpha(alpha)
    return tempered_kl_logits(
        teacher_logits,
        student_logits.float(),
        tau,
        kl_weight=alpha,
        labels=labels,
        ce_weight=1 - alpha,
    )
