"""Effective collaborative learning among experts (Xu, Chai et al., IEEE TMM; METHODS §9).

Choices where the method description leaves room (recorded here and in the README):

* the balanced-transfer weight ``w_i`` of a distillation pair k -> q is the *receiving*
  expert q's (large where q's cls head is less confident than its ref head);
* distillation targets are detached (an expert teaches, it is not pulled by its pupil);
* the cached teacher joins as a fixed expert on the logit level (teacher -> every expert,
  weighted like any other pair); on the feature level only when its dimension equals the
  experts' (``teacher_features``);
* ``L_con`` is a cross-expert InfoNCE on L2-normalised features (positives: the same sample
  in two experts), enabled with ``con_weight > 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from softlabels.errors import UsageError
from softlabels.losses._checks import check_counts, check_positive, log_prior
from softlabels.losses._kl import tempered_kl_logits
from softlabels.losses._labels import MixedLabels, hard_ce, per_label
from softlabels.losses._registry import register_loss

__all__ = ["ecl", "ecl_weights", "standardised_ce"]


def standardised_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample ``CE(softmax(z / sd(z)), y)``, sd = standard deviation of that sample's logits."""
    z = logits.float()
    sd = z.std(dim=-1, keepdim=True).clamp_min(1e-6)
    return F.cross_entropy(z / sd, labels, reduction="none")


def ecl_weights(
    cls_logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Balanced knowledge-transfer weight per sample (detached):
    ``w_i = CE(std(z_cls_i), y_i) / CE(std(z_ref_i), y_i)``."""
    with torch.no_grad():
        if isinstance(labels, MixedLabels):  # each CE by lam over the two labels
            num = per_label(lambda y: standardised_ce(cls_logits, y), labels)
            den = per_label(lambda y: standardised_ce(ref_logits, y), labels)
            return num / den.clamp_min(1e-8)
        return standardised_ce(cls_logits, labels) / standardised_ce(ref_logits, labels).clamp_min(
            1e-8
        )


def _weighted_kl(
    target_logits: torch.Tensor,
    student_logits: torch.Tensor,
    tau: float,
    weights: torch.Tensor | None,
) -> torch.Tensor:
    """``mean_i w_i T^2 KL(softmax_T(t_i) || softmax_T(s_i))`` (target detached)."""
    return tempered_kl_logits(target_logits, student_logits.float(), tau, weights=weights)


def _info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    za, zb = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = za @ zb.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(za), device=za.device))


@register_loss(
    "ecl",
    needs_teacher=False,
    defaults={"tau": 1.0, "alpha": 0.6, "con_weight": 0.0, "tau_bc": 1.0},
    summary="effective collaborative learning among K experts (+ the cached teacher)",
)
def ecl(
    *,
    cls_logits: Sequence[torch.Tensor],
    ref_logits: Sequence[torch.Tensor],
    features: Sequence[torch.Tensor],
    labels: torch.Tensor,
    class_counts: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    teacher_features: torch.Tensor | None = None,
    tau: float = 1.0,
    alpha: float = 0.6,
    con_weight: float = 0.0,
    tau_bc: float = 1.0,
    **_: object,
) -> torch.Tensor:
    """``L_sup + a (L_logit + L_feat) + b L_con`` over K experts (METHODS §9).

    ``L_sup`` = mean over experts of BC(ref) + BC(cls), ``BC(z) = CE(z + tau_bc log pi, y)``;
    ``L_logit`` = sum over ordered pairs k != q of ``mean_i w^q_i T^2 KL(softmax_T(z^k_cls) ||
    softmax_T(z^q_cls))`` / (K (K - 1)); ``L_feat`` the same KL over ``softmax_T(v^k)``
    along the feature dimension, unweighted. The cached teacher adds the pairs
    teacher -> q (divided by the same K (K - 1)).
    """
    k = len(cls_logits)
    if k < 2:
        raise UsageError(f"Expected K >= 2 experts for ECL, got {k}")
    if not (len(ref_logits) == len(features) == k):
        raise UsageError("Expected cls_logits, ref_logits and features for every expert")
    tau = check_positive("tau", tau)
    if alpha < 0 or con_weight < 0:
        raise UsageError(f"Expected alpha, con_weight >= 0, got {alpha}, {con_weight}")
    counts = check_counts(class_counts, cls_logits[0].shape[1])
    prior = tau_bc * log_prior(counts, cls_logits[0].float())
    sup = torch.stack(
        [
            hard_ce(r.float() + prior, labels) + hard_ce(c.float() + prior, labels)
            for c, r in zip(cls_logits, ref_logits, strict=True)
        ]
    ).mean()
    weights = [ecl_weights(c, r, labels) for c, r in zip(cls_logits, ref_logits, strict=True)]
    pairs = k * (k - 1)
    logit = sum(
        _weighted_kl(cls_logits[a], cls_logits[q], tau, weights[q])
        for a in range(k)
        for q in range(k)
        if a != q
    )
    feat = sum(
        _weighted_kl(features[a], features[q], tau, None)
        for a in range(k)
        for q in range(k)
        if a != q
    )
    if teacher_logits is not None:
        logit = logit + sum(
            _weighted_kl(teacher_logits, cls_logits[q], tau, weights[q]) for q in range(k)
        )
    if teacher_features is not None:
        feat = feat + sum(_weighted_kl(teacher_features, features[q], tau, None) for q in range(k))
    total = sup + alpha * (logit + feat) / pairs
    if con_weight > 0:
        con = (
            sum(_info_nce(features[a], features[q]) for a in range(k) for q in range(k) if a != q)
            / pairs
        )
        total = total + con_weight * con
    return total
