"""The one place a ``--device`` string becomes a ``torch.device``."""

from __future__ import annotations

import torch

from softlabels.errors import UsageError

__all__ = ["resolve_device"]


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; one line when unusable."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"Expected --device auto, cpu, cuda or cuda:N, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device} asked for, but no CUDA device is available; use --device cpu"
        )
    return dev
