"""ECL: effective collaborative learning among K experts (METHODS §9).

The experts are students trained together in one pass; the cached teacher (optional)
joins as an extra, fixed expert on the logit level, and on the feature level when its
feature dimension equals the experts'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from softlabels.students.methods._registry import (
    Method,
    ModelRequest,
    Option,
    StepContext,
    StepFn,
    at_least,
    non_negative,
    positive,
    register_method,
    unit_interval,
)
from softlabels.students.methods._steps import teacher_logits

if TYPE_CHECKING:
    import torch

    from softlabels.engine.inputs import Batch


def _model(req: ModelRequest) -> torch.nn.Module:
    return req.build(
        "experts",
        backbone=req.model,
        num_experts=req.options["experts"],
        inference=req.options["inference"],
        backbone_kwargs=req.backbone_kwargs or None,
    )


def _step(ctx: StepContext) -> StepFn:
    from softlabels.losses import ecl

    hp = {k: ctx.options[k] for k in ("tau", "alpha", "con_weight", "tau_bc")}
    targets = ctx.targets

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        outs = model.expert_outputs(batch.x)
        kw: dict[str, Any] = {}
        if targets is not None:
            kw["teacher_logits"] = teacher_logits(ctx, batch)
            if targets.feature_dim == outs[0][0].shape[-1]:
                kw["teacher_features"] = targets.batch_features(batch)
        loss = ecl(
            cls_logits=[c for _, c, _ in outs],
            ref_logits=[r for _, _, r in outs],
            features=[v for v, _, _ in outs],
            labels=batch.labels,
            class_counts=ctx.counts,
            **kw,
            **hp,
        )
        return {"loss": loss}

    return step


def _check(options: Mapping[str, Any]) -> str | None:
    inference, experts = options["inference"], options["experts"]
    if inference == "mean" or (inference.isdigit() and int(inference) < experts):
        return None
    return f"Expected inference 'mean' or an expert index < {experts}, got {inference!r}"


METHOD = register_method(
    Method(
        name="ecl",
        summary="collaborative learning among K experts (+ the cached teacher as a fixed one)",
        loss="softlabels.losses:ecl",
        options=(
            Option("tau", "tau", 1.0, "temperature T, or 'auto' (tune-tau's choice)", positive),
            Option("alpha", "float", 0.6, "weight a of the distillation terms", unit_interval),
            Option(
                "con_weight",
                "float",
                0.0,
                "weight b of the contrastive proxy (0 = off)",
                non_negative,
            ),
            Option("tau_bc", "float", 1.0, "weight of log pi in the balanced CE of each head"),
            Option("experts", "int", 3, "number of experts K", at_least(2)),
            Option(
                "inference", "str", "mean", "'mean' of the experts' cls heads, or an expert index"
            ),
        ),
        teacher="optional",
        teacher_features=True,
        model=_model,
        step=_step,
        check=_check,
        references="Xu, Chai et al., IEEE TMM",
    )
)
