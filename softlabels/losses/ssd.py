"""Self supervision to distillation, stage III student (Li, Wang, Wu, ICCV 2021; METHODS §8)."""

from __future__ import annotations

import torch

from softlabels.losses._checks import check_positive
from softlabels.losses._kl import tempered_kl_logits
from softlabels.losses._labels import hard_ce
from softlabels.losses._registry import register_loss

__all__ = ["ssd"]


@register_loss(
    "ssd",
    needs_teacher=True,
    defaults={"tau": 2.0, "lambda_hard": 1.0, "lambda_soft": 1.0},
    summary="SSD student: hard head (CE) + soft head (KD from a calibrated teacher)",
)
def ssd(
    *,
    hard_logits: torch.Tensor,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 2.0,
    lambda_hard: float = 1.0,
    lambda_soft: float = 1.0,
    **_: object,
) -> torch.Tensor:
    """``l1 CE(z_hard, y) + l2 T^2 KL(softmax_T(z_t') || softmax_T(z_soft))``.

    ``student_logits`` are the soft head's, ``teacher_logits`` the stage-II calibrated
    teacher's.
    """
    tau = check_positive("tau", tau)
    if lambda_hard < 0 or lambda_soft < 0:
        from softlabels.errors import UsageError

        raise UsageError(
            f"Expected lambda_hard, lambda_soft >= 0, got {lambda_hard}, {lambda_soft}"
        )
    hard = hard_ce(hard_logits.float(), labels)
    return lambda_hard * hard + lambda_soft * tempered_kl_logits(
        teacher_logits, student_logits.float(), tau
    )
