"""CBD: class-balanced distillation (Iscen et al., BMVC 2021; METHODS §7).

The student (class-balanced sampling, from scratch) is a backbone with a linear projection
to the K feature teachers' concatenated dimension and a cosine classifier on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from softlabels.errors import UsageError
from softlabels.students.methods._registry import (
    Method,
    ModelRequest,
    Option,
    StepContext,
    StepFn,
    positive,
    register_method,
    unit_interval,
)

if TYPE_CHECKING:
    import torch

    from softlabels.engine.inputs import Batch


def _model(req: ModelRequest) -> torch.nn.Module:
    return req.build(
        "projected",
        backbone=req.model,
        proj_dim=req.feature_dim,
        backbone_kwargs=req.backbone_kwargs or None,
        classifier="cosine",
    )


def _step(ctx: StepContext) -> StepFn:
    if not ctx.feature_targets:
        raise UsageError(f"student {ctx.name!r} (CBD) needs cached teacher features")
    from softlabels.losses import cbd

    alpha, feat_weight = ctx.options["alpha"], ctx.options["feat_weight"]

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        h = model.features(batch.x)
        z = model.fc(h).float()
        feats = [t.batch_features(batch) for t in ctx.feature_targets]
        loss = cbd(
            student_logits=z,
            student_features=h,
            teacher_features=feats,
            labels=batch.labels,
            alpha=alpha,
            feat_weight=feat_weight,
        )
        return {"loss": loss}

    return step


METHOD = register_method(
    Method(
        name="cbd",
        summary="class-balanced distillation: (1 - a) CE + a b (1 - cos(h(v_s), V_t))",
        loss="softlabels.losses:cbd",
        options=(
            Option("alpha", "float", 0.4, "weight a of the feature term", unit_interval),
            Option("feat_weight", "float", 100.0, "weight b of the feature cosine term", positive),
            Option(
                "teachers",
                "names",
                None,
                "the K feature teachers (default: every teacher with cached features)",
            ),
        ),
        feature_teachers=True,
        sampler="class-balanced",
        model=_model,
        step=_step,
        references="Iscen et al., BMVC 2021",
    )
)
