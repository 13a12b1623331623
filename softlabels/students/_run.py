"""What a distill run is made of: its result, each student's plan, the shared session."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softlabels.students.methods import Method
from softlabels.students.plan import StudentSpec

__all__ = ["DistillResult", "Session", "StudentRun"]


@dataclass
class DistillResult:
    out: str
    students: list[dict[str, Any]]
    teachers: list[dict[str, Any]]
    passes: int
    seconds: float
    groups_definition: str
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StudentRun:
    """One student as the engine sees it: its spec, its method and what it uses."""

    spec: StudentSpec
    method: Method
    hparams: dict[str, Any]
    teacher: str | None  # the logit teacher
    feature_teachers: tuple[str, ...]
    views: str  # "replay", "own" or "online"
    schedule: str  # how replayed views are chosen: "epoch" or "random"
    replay_views: int  # the first views replayed (all the cache's by default)
    mixed_views: bool = False  # its inputs are the cache's mixed views (replayed or online)

    @property
    def shown_teacher(self) -> str | None:
        return self.teacher or ("+".join(self.feature_teachers) or None)

    @property
    def record(self) -> dict[str, Any]:
        if self.method.record is None:
            return {}
        return self.method.record(self.hparams, mixed_views=self.mixed_views)


@dataclass
class Session:
    """What every student of one distill call shares: data, cache, targets, device."""

    ds: Any
    cache: Any
    out: Path
    ctx: Any  # distributed.Context
    counts: np.ndarray
    definition: str
    targets: dict[str, Any]
    cached_seeds: np.ndarray | None
    # (partner, lam, box) [N, V] of a cache with mixed views, when a student replays them.
    cached_mix: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    strength: str
    workers: int
    online: dict[str, Any] = field(default_factory=dict)  # teachers run in the loop

    @property
    def device(self) -> torch.device:
        return self.ctx.device
