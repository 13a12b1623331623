"""Class-balanced distillation (Iscen et al., BMVC 2021; METHODS §7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from softlabels.errors import UsageError
from softlabels.losses._checks import check_alpha, check_positive
from softlabels.losses._labels import hard_ce
from softlabels.losses._registry import register_loss

__all__ = ["cbd", "cbd_target"]


def cbd_target(teacher_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """``V_t``: the K teachers' features, each L2-normalised, concatenated ([B, sum d_k])."""
    if len(teacher_features) == 0:
        raise UsageError("Expected at least one teacher's features for CBD, got none")
    return torch.cat([F.normalize(f.float(), dim=-1) for f in teacher_features], dim=-1)


@register_loss(
    "cbd",
    needs_teacher=True,
    defaults={"alpha": 0.4, "feat_weight": 100.0},
    summary="class-balanced distillation (feature cosine to K teachers)",
)
def cbd(
    *,
    student_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: Sequence[torch.Tensor] | torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 0.4,
    feat_weight: float = 100.0,
    **_: object,
) -> torch.Tensor:
    """``(1 - a) CE(z_s, y) + a * b * mean_i (1 - cos(h(v_s)_i, V_t,i))``.

    ``student_features`` is the student's projected feature ``h(v_s)`` ([B, sum d_k]);
    ``teacher_features`` the list of the K teachers' features (or ``V_t`` already built).
    """
    alpha = check_alpha(alpha)
    check_positive("feat_weight", feat_weight)
    target = (
        teacher_features
        if isinstance(teacher_features, torch.Tensor)
        else cbd_target(teacher_features)
    )
    if target.shape != student_features.shape:
        raise UsageError(
            f"Expected the student's projection to match the teachers' features {tuple(target.shape[1:])}, "
            f"got {tuple(student_features.shape[1:])}"
        )
    cos = F.cosine_similarity(student_features.float(), target.float(), dim=-1)
    ce = hard_ce(student_logits.float(), labels)
    return (1 - alpha) * ce + alpha * feat_weight * (1 - cos).mean()
