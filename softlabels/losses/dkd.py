"""Decoupled knowledge distillation (Zhao et al., CVPR 2022; METHODS §11).

The tempered distributions are split at the target class t: TCKD compares the binary
``[p_t, 1 - p_t]`` of teacher and student, NCKD their distributions over the other
classes (renormalised without t). Everything is computed from log-probabilities: the
binary pair from ``log_softmax`` and a ``logsumexp`` over the non-target classes, and the
non-target distribution with the target logit set to ``-inf`` (the reference code
subtracts 1000 instead, which gives the same values to float precision).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from softlabels.errors import UsageError
from softlabels.losses._checks import check_positive
from softlabels.losses._labels import MixedLabels, hard_ce, per_label
from softlabels.losses._registry import register_loss

__all__ = ["dkd", "dkd_parts"]


def _kl_rows(log_q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """``sum_c q_c (log q_c - log p_c)`` per row, with ``0 log 0 = 0``."""
    q = log_q.exp()
    diff = torch.where(q > 0, log_q - log_p, torch.zeros_like(log_q))
    return (q * diff).sum(-1)


def _split(logits: torch.Tensor, labels: torch.Tensor, tau: float) -> tuple[torch.Tensor, ...]:
    """(log [p_t, 1 - p_t], log p~ over the non-target classes), at temperature tau."""
    z = logits.float() / tau
    target = F.one_hot(labels, z.shape[1]).bool()
    log_p = F.log_softmax(z, dim=-1)
    log_pt = log_p.gather(1, labels[:, None])
    log_rest = torch.logsumexp(log_p.masked_fill(target, float("-inf")), dim=-1, keepdim=True)
    binary = torch.cat([log_pt, log_rest], dim=1)
    non_target = F.log_softmax(z.masked_fill(target, float("-inf")), dim=-1)
    return binary, non_target


def dkd_parts(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TCKD, NCKD)``, each ``T^2 KL(teacher || student)``, batchmean."""
    tau = check_positive("tau", tau)
    if isinstance(labels, MixedLabels):  # the split is the label's: both, by lam, per row
        tckd = per_label(lambda y: _parts_rows(student_logits, teacher_logits, y, tau)[0], labels)
        nckd = per_label(lambda y: _parts_rows(student_logits, teacher_logits, y, tau)[1], labels)
        return tckd.mean() * tau * tau, nckd.mean() * tau * tau
    tckd_rows, nckd_rows = _parts_rows(student_logits, teacher_logits, labels, tau)
    tckd = tckd_rows.mean() * tau * tau
    nckd = nckd_rows.mean() * tau * tau
    return tckd, nckd


def _parts_rows(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """TCKD and NCKD KL per row (before the T^2 factor)."""
    b_s, n_s = _split(student_logits, labels, tau)
    b_t, n_t = _split(teacher_logits.detach(), labels, tau)
    return _kl_rows(b_t, b_s), _kl_rows(n_t, n_s)


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
