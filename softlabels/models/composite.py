"""Students built around another architecture (the backbone): CBD, SSD and ECL students.

* ``projected`` (CBD): ``h(v) = normalize(relu(W_p v))`` on the backbone feature ``v``, a
  cosine classifier on ``h(v)``; ``features`` is ``h(v)`` (what CBD matches to the teachers).
* ``twohead`` (SSD stage III): one backbone feature, a soft head ``fc`` (the reported one,
  distilled from the calibrated teacher) and a hard head ``hard_head`` (CE on labels).
* ``experts`` (ECL): K backbones, each with a ``cls`` and a ``ref`` head; the prediction is
  the mean of the experts' cls logits (or one expert's, ``inference = k``).

Each is built through the registry, so checkpoints rebuild it with ``create_model``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from softlabels.errors import UsageError
from softlabels.models._base import ClassifierNet, ModelArgs
from softlabels.models._registry import create_model, register_model

__all__ = ["Experts", "Projected", "TwoHead"]


def _backbone(
    args: ModelArgs, backbone: str, backbone_kwargs: dict[str, Any] | None
) -> ClassifierNet:
    if backbone in ("projected", "twohead", "experts"):
        raise UsageError(f"Expected a plain architecture as backbone, got {backbone!r}")
    inner = create_model(
        backbone,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        **(backbone_kwargs or {}),
    )
    if not isinstance(inner, ClassifierNet):
        raise UsageError(f"Expected a built-in architecture as backbone, got {backbone!r}")
    inner.fc = nn.Identity()  # the backbone's own classifier is not used
    inner.ssl_head = None
    return inner


class Projected(ClassifierNet):
    def __init__(
        self,
        name: str,
        args: ModelArgs,
        *,
        backbone: str,
        proj_dim: int,
        backbone_kwargs: dict[str, Any] | None,
    ) -> None:
        if not isinstance(proj_dim, int) or proj_dim < 1:
            raise UsageError(f"Expected an integer proj_dim >= 1, got {proj_dim!r}")
        inner = _backbone(args, backbone, backbone_kwargs)
        super().__init__(
            name,
            args,
            feature_dim=proj_dim,
            backbone=backbone,
            proj_dim=proj_dim,
            backbone_kwargs=backbone_kwargs or {},
        )
        self.backbone = inner
        self.proj = nn.Linear(inner.feature_dim, proj_dim)
        self._add_heads()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.relu(self.proj(self.backbone.features(x))), dim=-1)


class TwoHead(ClassifierNet):
    def __init__(
        self, name: str, args: ModelArgs, *, backbone: str, backbone_kwargs: dict[str, Any] | None
    ) -> None:
        inner = _backbone(args, backbone, backbone_kwargs)
        super().__init__(
            name,
            args,
            feature_dim=inner.feature_dim,
            backbone=backbone,
            backbone_kwargs=backbone_kwargs or {},
        )
        self.backbone = inner
        self._add_heads()
        self.hard_head = nn.Linear(inner.feature_dim, args.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(x)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hard logits, soft logits)`` from one feature pass."""
        v = self.features(x)
        return self.hard_head(v), self.fc(v)


class Experts(nn.Module):
    def __init__(
        self,
        args: ModelArgs,
        *,
        backbone: str,
        num_experts: int,
        inference: str,
        backbone_kwargs: dict[str, Any] | None,
    ) -> None:
        super().__init__()
        if not isinstance(num_experts, int) or num_experts < 2:
            raise UsageError(f"Expected K >= 2 experts, got {num_experts!r}")
        if inference != "mean" and not (inference.isdigit() and int(inference) < num_experts):
            raise UsageError(
                f"Expected inference 'mean' or an expert index < {num_experts}, got {inference!r}"
            )
        self.args = args
        self.num_classes = args.num_classes
        self._config = {
            "backbone": backbone,
            "num_experts": num_experts,
            "inference": inference,
            "backbone_kwargs": backbone_kwargs or {},
        }
        self.experts = nn.ModuleList(
            [_backbone(args, backbone, backbone_kwargs) for _ in range(num_experts)]
        )
        dim = self.experts[0].feature_dim
        self.feature_dim = dim
        self.cls_heads = nn.ModuleList(
            [nn.Linear(dim, args.num_classes) for _ in range(num_experts)]
        )
        self.ref_heads = nn.ModuleList(
            [nn.Linear(dim, args.num_classes) for _ in range(num_experts)]
        )
        self.inference = inference

    def expert_outputs(
        self, x: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(feature, cls logits, ref logits)`` of every expert."""
        out = []
        for body, cls, ref in zip(self.experts, self.cls_heads, self.ref_heads, strict=True):
            v = body.features(x)
            out.append((v, cls(v), ref(v)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inference != "mean":
            k = int(self.inference)
            return self.cls_heads[k](self.experts[k].features(x))
        return torch.stack([z for _, z, _ in self.expert_outputs(x)]).mean(0)

    def arch_config(self) -> dict[str, Any]:
        return {"name": "experts", "kwargs": {**self.args.to_dict(), **self._config}}


@register_model
def projected(
    args: ModelArgs,
    *,
    backbone: str = "cnn1d",
    proj_dim: int = 128,
    backbone_kwargs: dict[str, Any] | None = None,
) -> Projected:
    """CBD student: backbone + linear projection (ReLU, L2) + classifier (cosine for CBD)."""
    return Projected(
        "projected", args, backbone=backbone, proj_dim=proj_dim, backbone_kwargs=backbone_kwargs
    )


@register_model
def twohead(
    args: ModelArgs, *, backbone: str = "cnn1d", backbone_kwargs: dict[str, Any] | None = None
) -> TwoHead:
    """SSD student: backbone with a soft head (``fc``) and a hard head."""
    return TwoHead("twohead", args, backbone=backbone, backbone_kwargs=backbone_kwargs)


@register_model
def experts(
    args: ModelArgs,
    *,
    backbone: str = "cnn1d",
    num_experts: int = 3,
    inference: str = "mean",
    backbone_kwargs: dict[str, Any] | None = None,
) -> Experts:
    """ECL: K backbones with cls and ref heads; predicts with the mean of the cls heads."""
    return Experts(
        args,
        backbone=backbone,
        num_experts=num_experts,
        inference=inference,
        backbone_kwargs=backbone_kwargs,
    )
