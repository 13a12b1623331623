"""Step functions: a student's method turned into ``batch -> {"loss", parts}``.

Hyper-parameters resolve in this order: the method's registry defaults, then the
student's spec (``None`` = keep the default), then ``tau = "auto"`` from tune-tau.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from softlabels.engine.inputs import Batch
from softlabels.errors import UsageError
from softlabels.losses import get_loss
from softlabels.losses._kl import tempered_kl
from softlabels.losses.baselines import effective_number_weights
from softlabels.losses.bkd import bkd_target_log
from softlabels.students.plan import StudentSpec
from softlabels.students.targets import TeacherTargets

__all__ = ["MIXUP_TARGET", "make_step", "resolve_hparams"]

# With a cache that has no exact mixup views, the target of a mixed input is the mix of the
# two cached targets with the same lambda (DESIGN.md, views). Recorded in every run.
MIXUP_TARGET = "mixed-targets"

_HP_KEYS = (
    "tau",
    "power",
    "alpha",
    "beta",
    "tau_bc",
    "feat_weight",
    "lambda_hard",
    "lambda_soft",
    "con_weight",
)


def resolve_hparams(spec: StudentSpec, tune_tau: dict[str, Any] | None) -> dict[str, Any]:
    info = get_loss(spec.method)
    hp = dict(info.defaults)
    for key in _HP_KEYS:
        value = getattr(spec, key)
        # A value the method does not use (e.g. a plan-wide tau for a CE student) is ignored;
        # the resolved hyper-parameters saved with the run show what was used.
        if value is not None and key in info.defaults:
            hp[key] = value
    if hp.get("tau") == "auto":
        if not tune_tau or "choice" not in tune_tau:
            raise UsageError(
                f"student {spec.name!r} asks for tau = auto, but the cache has no tune-tau choice; "
                "run `softlabels tune-tau CACHE` first"
            )
        choice = tune_tau["choice"]
        hp["tau"] = float(choice["tau"])
        if "power" in info.defaults and spec.power is None:
            hp["power"] = float(choice["power"])
    return hp


def make_step(
    spec: StudentSpec,
    hp: dict[str, Any],
    counts: torch.Tensor,
    targets: TeacherTargets | None,
    feature_targets: list[TeacherTargets] | None = None,
) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
    fn = get_loss(spec.method).fn
    if spec.needs_teacher and targets is None and spec.method != "cbd":
        raise UsageError(f"student {spec.name!r} (method {spec.method}) needs a teacher")

    if spec.method == "bkd" and (spec.mixup > 0 or spec.drw_epoch is not None):
        return _bkd_step(spec, hp, counts, targets)
    if spec.method == "cbd":
        assert feature_targets
        return _cbd_step(hp, feature_targets)
    if spec.method == "ssd":
        assert targets is not None
        return _ssd_step(hp, targets)
    if spec.method == "ecl":
        return _ecl_step(hp, counts, targets)

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        z = model(batch.x).float()
        kw: dict[str, Any] = {"student_logits": z, "labels": batch.y, "class_counts": counts, **hp}
        if targets is not None and spec.needs_teacher:
            kw["teacher_logits"] = targets.logits_for(batch.rows, batch.view)
        loss = fn(**kw)
        return {"loss": loss}

    return step


def _cbd_step(
    hp: dict[str, Any], feature_targets: list[TeacherTargets]
) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
    from softlabels.losses import cbd

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        h = model.features(batch.x)
        z = model.fc(h).float()
        feats = [t.features_for(batch.rows, batch.view) for t in feature_targets]
        return {
            "loss": cbd(
                student_logits=z, student_features=h, teacher_features=feats, labels=batch.y, **hp
            )
        }

    return step


def _ssd_step(
    hp: dict[str, Any], targets: TeacherTargets
) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
    from softlabels.losses import ssd

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        hard, soft = model.heads(batch.x)
        zt = targets.logits_for(batch.rows, batch.view)
        return {
            "loss": ssd(
                hard_logits=hard, student_logits=soft, teacher_logits=zt, labels=batch.y, **hp
            )
        }

    return step


def _ecl_step(
    hp: dict[str, Any], counts: torch.Tensor, targets: TeacherTargets | None
) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
    from softlabels.losses import ecl

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        outs = model.expert_outputs(batch.x)
        kw: dict[str, Any] = {}
        if targets is not None:
            kw["teacher_logits"] = targets.logits_for(batch.rows, batch.view)
            if targets.features is not None and targets.features.shape[-1] == outs[0][0].shape[-1]:
                kw["teacher_features"] = targets.features_for(batch.rows, batch.view)
        loss = ecl(
            cls_logits=[c for _, c, _ in outs],
            ref_logits=[r for _, _, r in outs],
            features=[v for v, _, _ in outs],
            labels=batch.y,
            class_counts=counts,
            **kw,
            **hp,
        )
        return {"loss": loss}

    return step


def _bkd_step(
    spec: StudentSpec, hp: dict[str, Any], counts: torch.Tensor, targets: TeacherTargets | None
) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
    assert targets is not None
    tau, alpha = float(hp["tau"]), float(hp["alpha"])
    weights = effective_number_weights(counts.cpu(), float(hp["beta"])).to(counts.device)
    ones = torch.ones_like(weights)

    def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        w = ones if spec.drw_epoch is not None and batch.epoch < spec.drw_epoch else weights
        zt = targets.logits_for(batch.rows, batch.view)
        x, y = batch.x, batch.y
        if spec.mixup > 0:
            rng = np.random.Generator(np.random.PCG64([spec.seed, batch.epoch, batch.step]))
            lam = float(rng.beta(spec.mixup, spec.mixup))
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
            ce = F.cross_entropy(z, y)
            log_q = bkd_target_log(zt, tau, w)
        kl = tempered_kl(log_q, z, tau)
        return {"loss": ce + alpha * kl, "ce": ce.detach(), "kl": kl.detach()}

    return step
