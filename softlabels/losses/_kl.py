"""The tempered KL of every logit method, as one fused op with a closed-form backward.

``L = kl_weight * tau^2 / B * sum_i w_i KL(q_i || softmax(z_i / tau))
+ ce_weight * CE(z + offset, y)``: the KL with ``w_i = 1`` unless given is ``tau^2 *
F.kl_div(..., "batchmean")`` (with weights, ECL's ``mean_i w_i KL_i``); ``q`` is the target
distribution, given by its logs (``log_target``) or built from target logits at their own
temperature (``softmax(t / target_tau)``), with ``0 log 0 = 0`` (rows whose target puts no
mass on some classes, e.g. DKD's non-target distribution). Student logits must be finite
(DKD masks the student's target logit with the most negative float, not ``-inf``). The
optional hard-label term is the cross-entropy of KD, DiVE (``offset = log pi``: balanced softmax) and BKD, fused into the
same op because on a small student the per-op overhead of the loss, not its arithmetic, is
what a KD step costs beyond a CE step.

Gradient (``s = z / tau``, ``p = softmax(s)``, every row of ``q`` a distribution)::

    dKL_i / ds_i = p_i - q_i            =>  dKL-term / dz_i = kl_weight * tau * w_i / B * (p_i - q_i)
    dCE / dz_i = (softmax(z_i + offset) - onehot(y_i)) / B

so the forward keeps only that [B, C] gradient and the backward is one product with the
incoming gradient. The target, weights and offset are constants: no gradient flows into
them (a target that requires grad is treated as detached, like DKD's and ECL's
``.detach()``). Computed in float32 (float64 stays float64), the student's side from
``log_softmax`` (never ``log(softmax)``), ``q log q`` as ``xlogy``; no host-device
synchronisation; works on any device and under autocast (half/bfloat16 logits are promoted,
the gradient is returned in the logits' dtype). Not twice differentiable: a backward with
``create_graph=True`` through it raises.
"""

from __future__ import annotations

from typing import Any

import torch

from softlabels.losses._labels import Labels, MixedLabels

__all__ = ["tempered_kl", "tempered_kl_logits"]


class _TemperedKL(torch.autograd.Function):
    """The op of ``tempered_kl`` / ``tempered_kl_logits``: -> 0-dim loss."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        student_logits: torch.Tensor,
        target: torch.Tensor,
        target_tau: float | None,  # None: target is log q, else target logits at target_tau
        tau: float,
        weights: torch.Tensor | None,
        kl_weight: float,
        labels: Labels | None,
        ce_weight: float,
        offset: torch.Tensor | None,
    ) -> torch.Tensor:
        dtype = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
        z = student_logits if student_logits.dtype == dtype else student_logits.to(dtype)
        t = target if target.dtype == dtype else target.to(dtype)
        inv_b = 1.0 / z.shape[0] if z.shape[0] else float("nan")  # an empty batch: NaN, as a mean
        log_p = torch.log_softmax(z / tau, dim=-1)
        q = t.exp() if target_tau is None else torch.softmax(t / target_tau, dim=-1)
        terms = torch.xlogy(q, q) - q * log_p  # q (log q - log p), with 0 log 0 = 0
        if weights is not None:
            terms = terms.sum(-1) * weights.to(dtype)
        loss = terms.sum() * (kl_weight * tau * tau * inv_b)
        need_grad = ctx.needs_input_grad[0]
        if need_grad:
            grad = log_p.exp_().sub_(q)
            if weights is not None:
                grad.mul_(weights.to(dtype)[:, None])
            grad.mul_(kl_weight * tau * inv_b)
        if labels is not None and ce_weight != 0:
            log_s = torch.log_softmax(z if offset is None else z + offset.to(dtype), dim=-1)
            # (row's label, its share): one label, or a mixed view's two by lam (METHODS §13)
            shares = (
                [(labels.labels, labels.lam), (labels.partner, 1 - labels.lam)]
                if isinstance(labels, MixedLabels)
                else [(labels, None)]
            )
            if need_grad:
                grad.add_(log_s.exp(), alpha=ce_weight * inv_b)
            for y, share in shares:
                idx = y[:, None]
                picked = log_s.gather(1, idx)
                scale = torch.full_like(picked, -ce_weight * inv_b)
                if share is not None:
                    share = share.to(dtype)[:, None]
                    picked, scale = picked * share, scale * share
                loss = loss.sub_(picked.sum(), alpha=ce_weight * inv_b)
                if need_grad:
                    grad.scatter_add_(1, idx, scale)
        if need_grad:
            ctx.save_for_backward(grad)
            ctx.grad_dtype = student_logits.dtype
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True; cheaper than @once_differentiable
            raise RuntimeError("the fused tempered KL is not twice differentiable")
        (grad,) = ctx.saved_tensors
        grad = grad * grad_loss
        if grad.dtype != ctx.grad_dtype:
            grad = grad.to(ctx.grad_dtype)
        return grad, None, None, None, None, None, None, None, None


def tempered_kl(
    log_target: torch.Tensor,
    student_logits: torch.Tensor,
    tau: float,
    *,
    weights: torch.Tensor | None = None,
    kl_weight: float = 1.0,
    labels: Labels | None = None,
    ce_weight: float = 1.0,
    ce_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """``kl_weight * tau^2 * mean_i w_i KL(q_i || softmax(z_s,i / tau))``, ``log q`` given
    ([B, C]); with ``labels``, plus ``ce_weight * CE(z_s + ce_offset, labels)`` in the same op.

    Without ``weights`` the KL is ``tau^2 * F.kl_div(..., "batchmean", log_target=True)``.
    """
    return _TemperedKL.apply(
        student_logits,
        log_target,
        None,
        float(tau),
        weights,
        float(kl_weight),
        labels,
        float(ce_weight),
        ce_offset,
    )


def tempered_kl_logits(
    target_logits: torch.Tensor,
    student_logits: torch.Tensor,
    tau: float,
    *,
    target_tau: float | None = None,
    weights: torch.Tensor | None = None,
    kl_weight: float = 1.0,
    labels: Labels | None = None,
    ce_weight: float = 1.0,
    ce_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """``tempered_kl`` with ``q = softmax(target_logits / target_tau)`` (default ``tau``)."""
    return _TemperedKL.apply(
        student_logits,
        target_logits,
        float(tau if target_tau is None else target_tau),
        float(tau),
        weights,
        float(kl_weight),
        labels,
        float(ce_weight),
        ce_offset,
    )
