"""Teachers for the dump tests, loaded as ``py:softlabels_teachers_fixture_nets:NAME``.

``POISON`` holds rows of clean inputs (first ``KEY_LEN`` values) for which ``poisoned``
returns NaN logits; tests set it with ``monkeypatch`` (in-process dumps only).
``SOFTLABELS_TEST_SLEEP`` (seconds, environment) makes ``slow`` sleep before every batch,
so a subprocess can be killed in the middle of a dump.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn

__all__ = ["KEY_LEN", "POISON", "feature_overflow", "huge", "poisoned", "scaled", "slow"]

KEY_LEN = 6
POISON: list[list[float]] = []


class _Linear(nn.Module):
    """Flatten + Linear(in, 16) + tanh + Linear(16, C): a generic module with a final Linear."""

    def __init__(self, num_classes: int, in_channels: int, length: int = 40) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1234)
        self.body = nn.Linear(in_channels * length, 16)
        self.head = nn.Linear(16, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Poisoned(_Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if not POISON:
            return logits
        keys = torch.tensor(POISON, dtype=x.dtype, device=x.device)
        head = x.flatten(1)[:, :KEY_LEN]
        hit = (head[:, None, :] == keys[None, :, :]).all(-1).any(-1)
        return torch.where(hit[:, None], torch.full_like(logits, float("nan")), logits)


class _Huge(_Linear):
    """Logits around 1e6 (a huge bias): finite in float32, Inf in float16."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__(num_classes, in_channels)
        with torch.no_grad():
            self.head.bias.add_(1e6)


class _Scaled(_Linear):
    """Post-processes its logits, so its final Linear does not reproduce them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * super().forward(x) + 1.0


class _FeatureOverflow(nn.Module):
    """Features around 1e6 (Inf in float16) with ordinary, finite logits."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.body = nn.Linear(in_channels * 40, 8)
        self.head = nn.Linear(8, num_classes)
        with torch.no_grad():
            self.head.weight.mul_(1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.flatten(1)) + 1e6)


class _Slow(_Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delay = float(os.environ.get("SOFTLABELS_TEST_SLEEP", "0") or 0)
        if delay > 0:
            time.sleep(delay)
        return super().forward(x)


def poisoned(num_classes: int, in_channels: int) -> nn.Module:
    return _Poisoned(num_classes, in_channels)


def huge(num_classes: int, in_channels: int) -> nn.Module:
    return _Huge(num_classes, in_channels)


def feature_overflow(num_classes: int, in_channels: int) -> nn.Module:
    torch.manual_seed(0)
    return _FeatureOverflow(num_classes, in_channels)


def scaled(num_classes: int, in_channels: int) -> nn.Module:
    return _Scaled(num_classes, in_channels)


def slow(num_classes: int, in_channels: int) -> nn.Module:
    return _Slow(num_classes, in_channels)
