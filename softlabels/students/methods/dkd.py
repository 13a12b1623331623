"""DKD: decoupled knowledge distillation (Zhao et al., CVPR 2022; METHODS §11).

``L = ce_weight CE + min(1, (e + 1) / kd_warmup) (alpha TCKD + beta NCKD)`` with e the
0-based epoch: the reference code counts epochs from 1 and scales by ``epoch / warmup``,
so its first epoch already has weight ``1 / warmup``; ``kd_warmup = 0`` switches the
warm-up off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from softlabels.students.methods._registry import (
    Method,
    Option,
    StepContext,
    StepFn,
    at_least,
    non_negative,
    positive,
    register_method,
)
from softlabels.students.methods._steps import teacher_logits

if TYPE_CHECKING:
    import torch

    from softlabels.engine.inputs import Batch


def warmup_factor(epoch: int, warmup: int) -> float:
    """The weight of the KD terms in 0-based ``epoch``."""
    return 1.0 if warmup == 0 else min(1.0, (epoch + 1) / warmup)


def _step(ctx: StepContext) -> StepFn:
    from softlabels.losses import dkd_parts, hard_ce

    tau, alpha, beta = ctx.options["tau"], ctx.options["alpha"], ctx.options["beta"]
    ce_weight, warmup = ctx.options["ce_weight"], ctx.options["kd_warmup"]

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        z = model(batch.x).float()
        tckd, nckd = dkd_parts(z, teacher_logits(ctx, batch), batch.labels, tau)
        ce = hard_ce(z, batch.labels)
        kd = warmup_factor(batch.epoch, warmup) * (alpha * tckd + beta * nckd)
        return {
            "loss": ce_weight * ce + kd,
            "ce": ce.detach(),
            "tckd": tckd.detach(),
            "nckd": nckd.detach(),
        }

    return step


METHOD = register_method(
    Method(
        name="dkd",
        summary="decoupled KD: CE + warm-up (alpha TCKD + beta NCKD)",
        loss="softlabels.losses:dkd",
        options=(
            Option("tau", "tau", 4.0, "temperature T, or 'auto' (tune-tau's choice)", positive),
            Option("alpha", "float", 1.0, "weight of the target-class term TCKD", non_negative),
            Option("beta", "float", 8.0, "weight of the non-target-class term NCKD", non_negative),
            Option("ce_weight", "float", 1.0, "weight of the cross-entropy term", non_negative),
            Option(
                "kd_warmup",
                "int",
                20,
                "epochs over which the KD terms ramp up (0 = off)",
                at_least(0),
            ),
        ),
        teacher="required",
        step=_step,
        references="Zhao et al., CVPR 2022",
    )
)
