"""Cosine classifier (CBD, METHODS.md §7): ``z = s * normalize(W) @ normalize(v)``.

No bias, and the scale ``s`` is a fixed number, not a learned parameter (it is part of the
architecture, recorded in ``arch_config()``, not of the state dict).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from softlabels.errors import UsageError

__all__ = ["CosineClassifier"]


class CosineClassifier(nn.Module):
    """Scaled cosine similarity between a feature and each class weight vector.

    ``weight`` has the shape of ``nn.Linear(in_features, num_classes).weight`` ([C, D]), and
    ``bias`` is always ``None``, so code that reads a linear layer's attributes works on it.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 20.0) -> None:
        super().__init__()
        if not isinstance(scale, int | float) or isinstance(scale, bool):
            raise UsageError(f"Expected a number for cosine scale, got {type(scale).__name__}")
        if not math.isfinite(scale) or scale <= 0:
            raise UsageError(f"Expected a finite cosine scale > 0, got {scale}")
        self.in_features = int(in_features)
        self.out_features = int(num_classes)
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Only directions matter; nn.Linear's default init gives them a uniform spread.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}"
        )
