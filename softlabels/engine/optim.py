"""Optimisers and learning-rate schedules (per step, with linear warm-up)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from softlabels.errors import UsageError

__all__ = ["OPTIMIZERS", "SCHEDULES", "OptimConfig", "build_optimizer", "lr_factor"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    milestones: tuple[float, ...] = field(default=(0.5, 0.75))  # fractions of training (step)
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"Expected --optimizer among {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise UsageError(
                f"Expected --schedule among {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not self.lr > 0:
            raise UsageError(f"Expected --lr > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise UsageError(f"Expected --weight-decay >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise UsageError(f"Expected --momentum in [0, 1), got {self.momentum}")
        if self.warmup_epochs < 0:
            raise UsageError(f"Expected --warmup-epochs >= 0, got {self.warmup_epochs}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimConfig
) -> torch.optim.Optimizer:
    params = list(params)
    # No weight decay on biases and norm parameters (1-D tensors).
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
        )
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` (0-based)."""
    warm = round(cfg.warmup_epochs * steps_per_epoch)
    if warm > 0 and step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        progress = step / max(1, total_steps)
        return cfg.gamma ** sum(progress >= m for m in cfg.milestones)
    span = max(1, total_steps - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / span)))
