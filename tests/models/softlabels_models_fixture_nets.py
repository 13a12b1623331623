"""Callables for the ``py:`` spec tests (imported as ``py:softlabels_models_fixture_nets:...``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ConvOnly",
    "TinyNet",
    "broken",
    "make_fixed",
    "make_net",
    "make_scaled",
    "not_a_module",
]


class TinyNet(nn.Module):
    """A generic classifier: an auxiliary Linear before the body, the real head last."""

    def __init__(self, num_classes: int = 10, in_features: int = 12) -> None:
        super().__init__()
        self.aux = nn.Linear(in_features, num_classes)  # same out_features, not the head
        self.body = nn.Sequential(nn.Flatten(1), nn.Linear(in_features, 16), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ScaledNet(TinyNet):
    """Post-processes its logits, so the head's input does not reproduce them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.head(self.body(x)) + 1.0


class ConvOnly(nn.Module):
    """A classifier without any nn.Linear (1x1 conv head)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def make_net(num_classes: int, in_channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return TinyNet(num_classes=num_classes, in_features=in_channels * 4)


def make_fixed() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet(num_classes=6)


def make_scaled(**kwargs: int) -> nn.Module:
    return ScaledNet(num_classes=kwargs.get("num_classes", 10))


def not_a_module() -> int:
    return 3


def broken(num_classes: int) -> nn.Module:
    raise RuntimeError(f"cannot build {num_classes} classes")
