"""DiVE: distilling virtual examples (He, Wu, Wei, ICCV 2021; METHODS §5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softlabels.errors import UsageError
from softlabels.losses._checks import check_alpha, check_counts, check_positive, log_prior
from softlabels.losses._kl import tempered_kl
from softlabels.losses._registry import register_loss

__all__ = ["dive", "dive_target_log"]


def dive_target_log(teacher_logits: torch.Tensor, tau: float, power: float) -> torch.Tensor:
    """``log normalize(softmax_T(z_t) ** p)`` = ``log_softmax(z_t * p / T)``."""
    return F.log_softmax(teacher_logits.float() * (power / tau), dim=-1)


@register_loss(
    "dive",
    needs_teacher=True,
    defaults={"tau": 3.0, "power": 0.5, "alpha": 0.5},
    summary="DiVE (BSCE + flattened KD)",
)
def dive(
    *,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    class_counts: torch.Tensor,
    tau: float = 3.0,
    power: float = 0.5,
    alpha: float = 0.5,
    **_: object,
) -> torch.Tensor:
    """``(1 - a) BSCE(z_s, y) + a T^2 KL(q || softmax_T(z_s))``, ``q = normalize(softmax_T(z_t)^p)``.

    The effective teacher temperature is ``T / p``; the student's stays ``T``.
    """
    tau = check_positive("tau", tau)
    alpha = check_alpha(alpha)
    if not 0 < power <= 1:
        raise UsageError(f"Expected power in (0, 1], got {power}")
    counts = check_counts(class_counts, student_logits.shape[1])
    z = student_logits.float()
    return tempered_kl(  # (1 - a) BSCE fused in
        dive_target_log(teacher_logits, tau, power),
        z,
        tau,
        kl_weight=alpha,
        labels=labels,
        ce_weight=1 - alpha,
        ce_offset=log_prior(counts, z),
    )
