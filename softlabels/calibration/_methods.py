"""SSD stage II on frozen features (METHODS.md §8): LWS, cRT and tau-normalisation.

Pure functions on tensors; nothing here knows about caches. A training sample is one
feature vector ``v`` with its label: features ``[N, D]`` or ``[N, V, D]`` (then every
(row, view) pair is a sample carrying the row's label). Training is CE under class-balanced
sampling (the engine's ``class-balanced`` sampler, seeded), SGD with momentum 0.9 and a
cosine learning-rate schedule per step; the same inputs and seed give the same bits on the
same device.

Defaults follow the reference code (classifier-balancing, whose LWS SSD-LT's stage II
uses): LWS trains its scales with SGD lr 0.2, momentum 0.9 and weight decay 5e-4 *on the
scales* (:data:`LWS_REFERENCE`); tau-normalisation drops the bias (``keep_bias=True``
keeps it). A training fit records the settings it used and how they differ from the
reference in :attr:`Fit.settings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from softlabels.engine.optim import OptimConfig, build_optimizer, lr_factor
from softlabels.engine.samplers import make_sampler
from softlabels.errors import DivergedError, UsageError

__all__ = [
    "KINDS",
    "LWS_REFERENCE",
    "METHODS",
    "Classifier",
    "Fit",
    "fit_crt",
    "fit_lws",
    "flatten_views",
    "lws_differences",
    "tau_norm",
]

METHODS = ("lws", "crt", "tau-norm")
KINDS = ("linear", "cosine")
MOMENTUM = 0.9
# classifier-balancing's cls_lws.yaml (and SSD-LT's stage II): SGD on the per-class scales.
LWS_REFERENCE: dict[str, Any] = {
    "lr": 0.2,
    "momentum": MOMENTUM,
    "weight_decay": 5e-4,
    "decay_scale": True,
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Classifier:
    """A final layer on a feature ``v``: ``z = lws_scale * head(v)``.

    ``head`` is ``W v + b`` (``kind="linear"``) or ``cosine_scale * normalize(W) @
    normalize(v)`` (``kind="cosine"``, CBD's classifier, METHODS.md §7; ``bias`` is then
    ignored and kept at zero). ``lws_scale`` ([C]) is set only by LWS; None means 1.
    """

    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    kind: str = "linear"
    cosine_scale: float | None = None
    lws_scale: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"Expected classifier kind linear or cosine, got {self.kind!r}")
        if self.weight.dim() != 2:
            raise UsageError(f"Expected a classifier weight [C, D], got {tuple(self.weight.shape)}")
        c = self.weight.shape[0]
        if tuple(self.bias.shape) != (c,):
            raise UsageError(f"Expected a classifier bias [{c}], got {tuple(self.bias.shape)}")
        if self.lws_scale is not None and tuple(self.lws_scale.shape) != (c,):
            raise UsageError(f"Expected an LWS scale [{c}], got {tuple(self.lws_scale.shape)}")
        if self.kind == "cosine":
            s = self.cosine_scale
            if s is None or not math.isfinite(s) or s <= 0:
                raise UsageError(f"Expected a finite cosine scale > 0, got {s!r}")

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])

    def to(self, device: torch.device | str) -> Classifier:
        return replace(
            self,
            weight=self.weight.to(device),
            bias=self.bias.to(device),
            lws_scale=None if self.lws_scale is None else self.lws_scale.to(device),
        )

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The logits before the LWS scale, in float32."""
        v = features.float()
        if self.kind == "cosine":
            assert self.cosine_scale is not None
            w = F.normalize(self.weight.float(), dim=-1)
            return self.cosine_scale * F.linear(F.normalize(v, dim=-1), w)
        return F.linear(v, self.weight.float(), self.bias.float())

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., C]`` (float32) of features ``[..., D]``."""
        z = self.head(features)
        return z if self.lws_scale is None else z * self.lws_scale.float()

    def formula(self) -> str:
        """How the logits follow from a feature, as text (recorded with a calibrated teacher).

        A linear layer whose bias is all zeros (none, or dropped by tau-norm) reads ``W v``.
        """
        if self.kind == "cosine":
            head = "cosine_scale * normalize(W) normalize(v)"
        else:
            head = "W v + b" if bool(self.bias.ne(0).any()) else "W v"
        return head if self.lws_scale is None else f"lws_scale * ({head})"


@dataclass
class Fit:
    """What a training calibration returns: the calibrated classifier and its history."""

    classifier: Classifier
    losses: list[float] = field(default_factory=list)  # mean CE of each epoch
    steps: int = 0
    # The optimiser settings used (lr, momentum, weight_decay, decay_on, schedule, sampler,
    # epochs, batch_size, seed) and, for LWS, ``differs_from_reference``: one line per
    # setting that is not the reference's (empty at the defaults).
    settings: dict[str, Any] = field(default_factory=dict)


def flatten_views(
    features: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``[N, D]`` or ``[N, V, D]`` and labels ``[N]`` -> samples ``[N*V, D]``, ``[N*V]``.

    Sample ``i * V + v`` is view ``v`` of row ``i``; it carries the row's label.
    """
    labels = torch.as_tensor(labels)
    if features.dim() not in (2, 3):
        raise UsageError(f"Expected features [N, D] or [N, V, D], got {tuple(features.shape)}")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise UsageError(
            f"Expected labels [{features.shape[0]}] for features {tuple(features.shape)}, "
            f"got {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise UsageError(f"Expected integer labels, got {labels.dtype}")
    if features.dim() == 2:
        return features, labels.long()
    n, v, d = features.shape
    return features.reshape(n * v, d), labels.long().repeat_interleave(v)


def _check_training(epochs: int, lr: float, batch_size: int, seed: int) -> None:
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise UsageError(f"Expected --epochs >= 1, got {epochs!r}")
    if not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        raise UsageError(f"Expected a finite --lr > 0, got {lr!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"Expected --batch-size >= 1, got {batch_size!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"Expected --seed >= 0, got {seed!r}")


def _check_samples(samples: torch.Tensor, labels: torch.Tensor, c: int, d: int) -> None:
    if samples.shape[-1] != d:
        raise UsageError(
            f"Expected features of dimension {d} (the classifier's), got {samples.shape[-1]}"
        )
    if samples.shape[0] == 0:
        raise UsageError("Expected at least one training sample, got none")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= c:
        raise UsageError(f"Expected labels in [0, {c}), got values in [{lo}, {hi}]")


def _train(
    name: str,
    params: list[torch.nn.Parameter],
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    samples: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float,
    progress: Progress | None,
    decay_all: bool = False,
) -> tuple[list[float], int]:
    """CE under class-balanced sampling; returns (mean loss per epoch, steps).

    Weight decay goes to the matrices only (``build_optimizer``'s rule), or with
    ``decay_all`` to every parameter (the reference's SGD, 1-D scales included).
    """
    device = samples.device
    # The sampler draws on the CPU from the labels (numpy): one copy, before training.
    sampler = make_sampler("class-balanced", labels.cpu().numpy(), num_classes, seed)
    cfg = OptimConfig(lr=float(lr), momentum=MOMENTUM, weight_decay=weight_decay)
    optimizer = (
        torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=weight_decay)
        if decay_all
        else build_optimizer(params, cfg)
    )
    m = samples.shape[0]
    steps_per_epoch = -(-m // batch_size)
    total = epochs * steps_per_epoch
    labels = labels.to(device)
    losses: list[float] = []
    for epoch in range(epochs):
        order = torch.from_numpy(sampler.epoch(epoch)).to(device)
        loss_sum = torch.zeros((), device=device)
        for b in range(steps_per_epoch):
            step = epoch * steps_per_epoch + b
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, total, steps_per_epoch, cfg)
            idx = order[b * batch_size : (b + 1) * batch_size]
            loss = F.cross_entropy(logits_fn(samples[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            if progress:
                progress(step + 1, total)
        # Sync point: one scalar per epoch.
        mean = float(loss_sum) / steps_per_epoch
        if not math.isfinite(mean) or not all(bool(torch.isfinite(p).all()) for p in params):
            raise DivergedError(
                f"{name} diverged in epoch {epoch + 1} (mean loss {mean}); lower --lr "
                "(nothing was written)"
            )
        losses.append(mean)
    return losses, total


def _settings(
    epochs: int, lr: float, batch_size: int, seed: int, weight_decay: float, decay_on: str
) -> dict[str, Any]:
    return {
        "epochs": epochs,
        "lr": float(lr),
        "batch_size": batch_size,
        "seed": seed,
        "momentum": MOMENTUM,
        "weight_decay": float(weight_decay),
        "decay_on": decay_on,
        "schedule": "cosine",
        "sampler": "class-balanced",
    }


def lws_differences(lr: float, weight_decay: float, decay_scale: bool) -> list[str]:
    """One line per LWS setting that differs from :data:`LWS_REFERENCE` (empty if none)."""
    ref = LWS_REFERENCE
    out = []
    if float(lr) != ref["lr"]:
        out.append(f"lr {float(lr):g} (reference {ref['lr']:g})")
    if float(weight_decay) != ref["weight_decay"]:
        out.append(f"weight_decay {float(weight_decay):g} (reference {ref['weight_decay']:g})")
    if bool(decay_scale) != ref["decay_scale"]:
        out.append("no weight decay on the scales (reference: decayed)")
    return out


def fit_lws(
    features: torch.Tensor,
    labels: torch.Tensor,
    classifier: Classifier,
    *,
    epochs: int = 10,
    lr: float = LWS_REFERENCE["lr"],
    batch_size: int = 512,
    seed: int = 0,
    weight_decay: float = LWS_REFERENCE["weight_decay"],
    decay_scale: bool = LWS_REFERENCE["decay_scale"],
    progress: Progress | None = None,
) -> Fit:
    """Learnable weight scaling: a per-class scale ``s`` (init 1) on the frozen classifier.

    ``z = s * head(v)`` with ``head`` the given (frozen) classifier: ``W v + b`` for a linear
    one, ``scale * normalize(W) normalize(v)`` for a cosine one. As in the reference code,
    SGD (lr 0.2, momentum 0.9) decays ``s`` with ``weight_decay`` (5e-4), pulling the scales
    towards 0; ``decay_scale=False`` leaves them undecayed. ``Fit.settings`` records the
    settings and how they differ from :data:`LWS_REFERENCE`. Features stay in their dtype
    on their device; each batch is computed in float32. Returns the classifier with
    ``lws_scale = s`` (W and b unchanged).
    """
    _check_training(epochs, lr, batch_size, seed)
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise UsageError(f"Expected a finite --weight-decay >= 0, got {weight_decay!r}")
    samples, flat = flatten_views(features, labels)
    _check_samples(samples, flat, classifier.num_classes, classifier.feature_dim)
    frozen = replace(classifier, lws_scale=None).to(samples.device)
    scale = torch.nn.Parameter(torch.ones(frozen.num_classes, device=samples.device))

    def logits(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = frozen.head(v)
        return z * scale

    losses, steps = _train(
        "LWS",
        [scale],
        logits,
        samples,
        flat,
        num_classes=frozen.num_classes,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        weight_decay=weight_decay,
        progress=progress,
        decay_all=bool(decay_scale),
    )
    out = replace(classifier, lws_scale=scale.detach().to(classifier.weight.device))
    settings = _settings(
        epochs, lr, batch_size, seed, weight_decay, "scale" if decay_scale else "none"
    )
    settings["differs_from_reference"] = lws_differences(lr, weight_decay, decay_scale)
    return Fit(classifier=out, losses=losses, steps=steps, settings=settings)


def fit_crt(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    kind: str = "linear",
    cosine_scale: float | None = None,
    epochs: int = 10,
    lr: float = 0.1,
    batch_size: int = 512,
    seed: int = 0,
    weight_decay: float = 5e-4,
    progress: Progress | None = None,
) -> Fit:
    """Classifier re-training: a fresh layer of the same kind, trained on frozen features.

    The layer is initialised like ``nn.Linear`` (weight and bias uniform in
    ``±1/sqrt(D)``) from ``torch.Generator().manual_seed(seed)`` on the CPU, so the start
    does not depend on the device. A cosine layer keeps ``cosine_scale`` fixed and has no
    bias. The weight matrix gets ``weight_decay``; the bias does not.
    """
    _check_training(epochs, lr, batch_size, seed)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise UsageError(f"Expected num_classes >= 1, got {num_classes!r}")
    samples, flat = flatten_views(features, labels)
    d = int(samples.shape[-1])
    _check_samples(samples, flat, num_classes, d)
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(d) if d > 0 else 0.0
    w0 = (torch.rand(num_classes, d, generator=gen) * 2 - 1) * bound
    b0 = (torch.rand(num_classes, generator=gen) * 2 - 1) * bound
    start = Classifier(w0, b0, kind=kind, cosine_scale=cosine_scale)  # validates kind/scale
    weight = torch.nn.Parameter(w0.to(samples.device))
    params = [weight]
    bias = torch.zeros(num_classes, device=samples.device)
    if kind == "linear":
        bias = torch.nn.Parameter(b0.to(samples.device))
        params.append(bias)

    def logits(v: torch.Tensor) -> torch.Tensor:
        return replace(start, weight=weight, bias=bias)(v)

    losses, steps = _train(
        "cRT",
        params,
        logits,
        samples,
        flat,
        num_classes=num_classes,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        weight_decay=weight_decay,
        progress=progress,
    )
    out = Classifier(
        weight.detach().clone(), bias.detach().clone(), kind=kind, cosine_scale=cosine_scale
    )
    settings = _settings(epochs, lr, batch_size, seed, weight_decay, "weight")
    return Fit(classifier=out, losses=losses, steps=steps, settings=settings)


def tau_norm(classifier: Classifier, power: float = 1.0, *, keep_bias: bool = False) -> Classifier:
    """Tau-normalisation: ``W_c <- W_c / ||W_c||^power``, logits ``W' v``.

    As in the reference code (classifier-balancing's ``tau_norm.py`` scores with
    ``dotproduct_similarity(feat, weights)``), the bias is dropped: the result has a zero
    bias. ``keep_bias=True`` keeps it unchanged (logits ``W' v + b``). ``power = 0`` leaves
    ``W`` unchanged and ``power = 1`` gives unit-norm class weights; a zero weight row stays
    zero. Refused for a cosine classifier, which normalises ``W`` itself (tau-norm would
    change nothing), and for an LWS-scaled one.
    """
    if not isinstance(power, int | float) or isinstance(power, bool) or not math.isfinite(power):
        raise UsageError(f"Expected a finite --tau-norm-power, got {power!r}")
    if power < 0:
        raise UsageError(f"Expected --tau-norm-power >= 0, got {power}")
    if classifier.kind == "cosine":
        raise UsageError(
            "tau-norm changes nothing on a cosine classifier (it normalises its weights "
            "already); use --method lws or crt"
        )
    if classifier.lws_scale is not None:
        raise UsageError("Expected a classifier without an LWS scale for tau-norm")
    w = classifier.weight.float()
    norms = w.norm(dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    bias = classifier.bias.float() if keep_bias else torch.zeros_like(classifier.bias.float())
    return replace(classifier, weight=w / norms.pow(float(power)), bias=bias)
