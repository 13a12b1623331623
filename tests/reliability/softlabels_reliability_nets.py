"""Teachers of the reliability tests, loaded as ``py:softlabels_reliability_nets:NAME``.

``slow`` sleeps ``SOFTLABELS_TEST_SLEEP`` seconds (environment, read at every forward) before
each batch, so a dump run in a subprocess can be killed at any moment of its run; without
the variable (in-process reference dumps and resumes) it runs at full speed and gives the
same logits.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn

__all__ = ["slow"]


class _Slow(nn.Module):
    """Flatten + Linear(in, 16) + tanh + Linear(16, C), fixed weights, optional sleep."""

    def __init__(self, num_classes: int, in_channels: int, length: int = 40) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(4321)
        self.body = nn.Linear(in_channels * length, 16)
        self.head = nn.Linear(16, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delay = float(os.environ.get("SOFTLABELS_TEST_SLEEP", "0") or 0)
        if delay > 0:
            time.sleep(delay)
        return self.head(torch.tanh(self.body(x.flatten(1))))


def slow(num_classes: int, in_channels: int) -> nn.Module:
    return _Slow(num_classes, in_channels)
