"""A teacher for the torchrun tests, loaded as ``py:softlabels_distributed_nets:crash``.

It is a fixed, seeded linear net. With ``SOFTLABELS_TEST_CRASH_RANK`` set to this process's
``RANK``, it kills its process (``os._exit``, no clean-up: a crash) at its
``SOFTLABELS_TEST_CRASH_AFTER``-th forward call; anywhere else it computes normally, so a
resumed one-process dump writes the same bytes as an uninterrupted one. With
``SOFTLABELS_TEST_CRASH_ATTEMPT`` set too, it dies by SIGKILL, and only in that attempt of
the job (torchrun's ``TORCHELASTIC_RESTART_COUNT``): the restarted group runs normally.
With ``SOFTLABELS_TEST_CRASH_COMMITS=K`` and ``SOFTLABELS_TEST_CRASH_CACHE=PATH`` it first
waits (up to a minute) until the cache at PATH has K committed chunk records: commits run
in the dump's commit thread, so without the wait how many are done at the crash is a race.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
from torch import nn

__all__ = ["crash"]


class _Crash(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, length: int = 40) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(4321)
        self.body = nn.Linear(in_channels * length, 16)
        self.head = nn.Linear(16, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        rank = os.environ.get("SOFTLABELS_TEST_CRASH_RANK")
        after = int(os.environ.get("SOFTLABELS_TEST_CRASH_AFTER", "1") or 1)
        if rank is not None and rank == os.environ.get("RANK") and self.calls >= after:
            _wait_for_commits()
            attempt = os.environ.get("SOFTLABELS_TEST_CRASH_ATTEMPT")
            if attempt is None:
                os._exit(17)
            if attempt == os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"):
                os.kill(os.getpid(), signal.SIGKILL)
        return self.head(self.features(x))


def _wait_for_commits() -> None:
    want = int(os.environ.get("SOFTLABELS_TEST_CRASH_COMMITS", "0") or 0)
    manifest = Path(os.environ.get("SOFTLABELS_TEST_CRASH_CACHE", ".")) / "manifest"
    deadline = time.monotonic() + 60
    while want and time.monotonic() < deadline:
        if len(list(manifest.glob("chunk-*.json"))) >= want:
            return
        time.sleep(0.01)


def crash(num_classes: int, in_channels: int) -> nn.Module:
    return _Crash(num_classes, in_channels)
