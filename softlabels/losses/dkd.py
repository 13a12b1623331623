"""Decoupled knowledge distillation (Zhao et al., CVPR 2022; METHODS §11).

The tempered distributions are split at the target class t: TCKD compares the binary
``[p_t, 1 - p_t]`` of teacher and student, NCKD their distributions over the other
classes (renormalised without t). Both are the one tempered KL of every logit method
(``losses._kl``) on derived logits: the binary pair is ``softmax_T([z_t, T lse_{c != t}(z_c /
T)])``, and the non-target distribution is ``softmax_T`` of the logits with the target
logit set to ``-inf`` for the teacher (``0 log 0 = 0``) and to the most negative float for the
student (the reference code subtracts 1000 instead, which gives the same values to float
precision).
"""

from __future__ import annotations

import torch

from softlabels.errors import UsageError
from softlabels.losses._checks import check_positive
from softlabels.losses._kl import tempered_kl_logits
from softlabels.losses._labels import MixedLabels, hard_ce
from softlabels.losses._registry import register_loss

__all__ = ["dkd", "dkd_parts"]


def _split(
    logits: torch.Tensor, labels: torch.Tensor, tau: float, fill: float
) -> tuple[torch.Tensor, ...]:
    """(binary logits ``[z_t, T lse_{c != t}(z_c / T)]``, the logits with ``z_t = fill``):
    their ``softmax_T`` are ``[p_t, 1 - p_t]`` and the non-target distribution."""
    z = logits.float()
    target = torch.zeros_like(z, dtype=torch.bool).scatter_(1, labels[:, None], True)
    rest = z.masked_fill(target, fill)
    rest_lse = torch.logsumexp(rest / tau, dim=-1, keepdim=True)
    return torch.cat([z.gather(1, labels[:, None]), tau * rest_lse], dim=1), rest


def dkd_parts(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TCKD, NCKD)``, each ``T^2 KL(teacher || student)``, batchmean (teacher detached)."""
    tau = check_positive("tau", tau)
    if isinstance(labels, MixedLabels):  # the split is the label's: both, weighted by lam
        own = _parts(student_logits, teacher_logits, labels.labels, tau, labels.lam)
        other = _parts(student_logits, teacher_logits, labels.partner, tau, 1 - labels.lam)
        return own[0] + other[0], own[1] + other[1]
    return _parts(student_logits, teacher_logits, labels, tau, None)


def _parts(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float,
    weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TCKD and NCKD split at ``labels``, rows weighted by ``weights`` (``None``: 1)."""
    # The teacher's target class gets -inf (q = 0 there), the student's the most negative
    # float (log p finite and p = 0 there, so that the KL's q log p is 0, not NaN).
    b_s, n_s = _split(student_logits, labels, tau, torch.finfo(torch.float32).min)
    b_t, n_t = _split(teacher_logits.detach(), labels, tau, float("-inf"))
    return (
        tempered_kl_logits(b_t, b_s, tau, weights=weights),
        tempered_kl_logits(n_t, n_s, tau, weights=weights),
    )


@register_loss(
    "dkd",
    needs_teacher=True,
    defaults={"tau": 4.0, "alpha": 1.0, "beta": 8.0, "ce_weight": 1.0},
    summary="decoupled KD (target and non-target class KD, weighted apart)",
)
def dkd(
    *,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 4.0,
    alpha: float = 1.0,
    beta: float = 8.0,
    ce_weight: float = 1.0,
    **_: object,
) -> torch.Tensor:
    """``ce_weight CE(z_s, y) + alpha TCKD + beta NCKD`` (the warm-up is the method's)."""
    if alpha < 0 or beta < 0 or ce_weight < 0:
        raise UsageError(f"Expected alpha, beta, ce_weight >= 0, got {alpha}, {beta}, {ce_weight}")
    tckd, nckd = dkd_parts(student_logits, teacher_logits, labels, tau)
    ce = hard_ce(student_logits.float(), labels)
    return ce_weight * ce + alpha * tckd + beta * nckd
