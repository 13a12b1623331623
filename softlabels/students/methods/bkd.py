"""BKD: balanced knowledge distillation (Zhang et al., Neurocomputing 2023; METHODS §6).

Options beyond the loss: deferred re-weighting (plain KD targets before ``drw_epoch``) and
mixup of the student's inputs. On a cache with mixed views (``dump --mixup/--cutmix``) the
inputs already are the cache's exact mixed views and their targets the teacher's outputs of
them, so the step mixes nothing more (``mixup_target = "exact"``); elsewhere a mixed input's
target is the mix of the two cached targets with the same lambda (``"mixed-targets"``,
DESIGN.md, views). Every run records which.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from softlabels.students.methods._registry import (
    Method,
    Option,
    StepContext,
    StepFn,
    at_least,
    half_open_unit,
    mix_rng,
    non_negative,
    positive,
    register_method,
)
from softlabels.students.methods._steps import logit_step, teacher_logits

if TYPE_CHECKING:
    import torch

    from softlabels.engine.inputs import Batch

MIXUP_TARGET = "mixed-targets"  # the mix of the two cached targets (no mixed views cached)
EXACT_TARGET = "exact"  # the cache's mixed views and the teacher's outputs of them

_plain = logit_step("softlabels.losses:bkd", ("tau", "alpha", "beta"), teacher=True)


def _step(ctx: StepContext) -> StepFn:
    drw_epoch, mixup = ctx.options["drw_epoch"], float(ctx.options["mixup"])
    if mixup == 0 and drw_epoch is None:
        return _plain(ctx)
    import torch
    import torch.nn.functional as F

    from softlabels.losses import bkd_target_log, effective_number_weights, hard_ce
    from softlabels.losses._kl import tempered_kl

    tau, alpha = float(ctx.options["tau"]), float(ctx.options["alpha"])
    counts = ctx.counts.tensor
    weights = effective_number_weights(counts.cpu(), float(ctx.options["beta"])).to(counts.device)
    ones = torch.ones_like(weights)

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        w = ones if drw_epoch is not None and batch.epoch < drw_epoch else weights
        zt = teacher_logits(ctx, batch)
        x, y = batch.x, batch.y
        if mixup > 0 and batch.mix is None:  # a mixed-views batch is mixed already
            rng = mix_rng(ctx.seed, batch.epoch, batch.step)
            lam = float(rng.beta(mixup, mixup))
            perm = torch.as_tensor(rng.permutation(len(y)), device=y.device)
            z = model(lam * x + (1 - lam) * x[perm]).float()
            ce = lam * F.cross_entropy(z, y) + (1 - lam) * F.cross_entropy(z, y[perm])
            q = (
                lam * bkd_target_log(zt, tau, w).exp()
                + (1 - lam) * bkd_target_log(zt[perm], tau, w).exp()
            )
            log_q = torch.log(q.clamp_min(1e-30))
        else:
            z = model(x).float()
            ce = hard_ce(z, batch.labels)
            log_q = bkd_target_log(zt, tau, w)
        kl = tempered_kl(log_q, z, tau)
        return {"loss": ce + alpha * kl, "ce": ce.detach(), "kl": kl.detach()}

    return step


def _record(options: Mapping[str, Any], *, mixed_views: bool = False) -> dict[str, Any]:
    if options["mixup"] <= 0:
        return {}
    return {"mixup_target": EXACT_TARGET if mixed_views else MIXUP_TARGET}


METHOD = register_method(
    Method(
        name="bkd",
        summary="Balanced KD: CE + a T^2 KL(normalize(w * teacher) || student)",
        loss="softlabels.losses:bkd",
        options=(
            Option("tau", "tau", 2.0, "temperature T, or 'auto' (tune-tau's choice)", positive),
            Option("alpha", "float", 1.0, "weight a of the distillation term", non_negative),
            Option("beta", "float", 0.9999, "effective-number beta of the weights", half_open_unit),
            Option(
                "drw_epoch",
                "int",
                None,
                "deferred re-weighting: plain KD targets before this epoch",
                at_least(0),
            ),
            Option(
                "mixup", "float", 0.0, "Beta(mixup, mixup) input mixing (0 = off)", non_negative
            ),
        ),
        teacher="required",
        step=_step,
        record=_record,
        references="Zhang et al., Neurocomputing 2023",
    )
)
