"""SSD stage III student (Li, Wang, Wu, ICCV 2021; METHODS §8), with optional stage IV.

Two linear heads on one feature: the hard head learns the labels, the soft head the
calibrated teacher. Both are evaluated; the soft head is the reported one. Stage IV
(``final_lws``) fits LWS on the trained student's hard head with clean training features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from softlabels.students.methods._registry import (
    FinishContext,
    Method,
    ModelRequest,
    Option,
    StepContext,
    StepFn,
    non_negative,
    positive,
    register_method,
)
from softlabels.students.methods._steps import teacher_logits

if TYPE_CHECKING:
    import torch

    from softlabels.engine.inputs import Batch


def _model(req: ModelRequest) -> torch.nn.Module:
    return req.build(
        "twohead",
        backbone=req.model,
        backbone_kwargs=req.backbone_kwargs or None,
        classifier=req.classifier,
    )


def _step(ctx: StepContext) -> StepFn:
    from softlabels.losses import ssd

    hp = {k: ctx.options[k] for k in ("tau", "lambda_hard", "lambda_soft")}

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        hard, soft = model.heads(batch.x)
        zt = teacher_logits(ctx, batch)
        loss = ssd(
            hard_logits=hard, student_logits=soft, teacher_logits=zt, labels=batch.labels, **hp
        )
        return {"loss": loss}

    return step


def _evaluate(model: torch.nn.Module, metrics_of: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The hard head's test metrics, recorded beside the soft head's."""
    hard = metrics_of(model, forward=lambda m, x: m.heads(x)[0])
    out = {"hard_top1": hard["top1"]}
    out.update({f"hard_{k}": v for k, v in hard["groups"].items() if k != "definition"})
    return out


def _finish(ctx: FinishContext) -> dict[str, Any]:
    if not ctx.options["final_lws"]:
        return {}
    import torch

    from softlabels.calibration import Classifier, fit_lws
    from softlabels.engine.inputs import clean_outputs
    from softlabels.metrics import evaluate_logits
    from softlabels.students.report import write_json

    model, ds = ctx.model, ctx.dataset
    device = next(model.parameters()).device
    model.eval()

    def feats(split: str) -> torch.Tensor:
        return clean_outputs(ds, split, model.features, device=device).to(device)

    head = Classifier(
        model.hard_head.weight.detach().float(), model.hard_head.bias.detach().float()
    )
    fit = fit_lws(
        feats("train"), torch.as_tensor(ds.train.labels, device=device), head, seed=ctx.seed
    )
    with torch.inference_mode():
        logits = fit.classifier.to(device)(feats("test"))
    m = evaluate_logits(logits.float().cpu().numpy(), ds.test.labels, ctx.counts, groups=ctx.groups)
    scale = fit.classifier.lws_scale
    result = {
        "top1": m["top1"],
        "ece": m["ece"],
        **{k: v for k, v in m["groups"].items() if k != "definition"},
        "lws_scale": [] if scale is None else [float(x) for x in scale.detach().cpu()],
    }
    write_json(ctx.out_dir / "final_lws.json", result)
    return {"hard_lws": result}


METHOD = register_method(
    Method(
        name="ssd",
        summary="SSD student: l1 CE(hard head) + l2 T^2 KL(calibrated teacher || soft head)",
        loss="softlabels.losses:ssd",
        options=(
            Option("tau", "tau", 2.0, "temperature T, or 'auto' (tune-tau's choice)", positive),
            Option("lambda_hard", "float", 1.0, "weight l1 of the hard head's CE", non_negative),
            Option("lambda_soft", "float", 1.0, "weight l2 of the soft head's KD", non_negative),
            Option("final_lws", "bool", False, "stage IV: LWS on the student's hard head"),
        ),
        teacher="required",
        calibrated_teacher=True,
        model=_model,
        step=_step,
        evaluate=_evaluate,
        finish=_finish,
        references="Li, Wang, Wu, ICCV 2021",
    )
)
