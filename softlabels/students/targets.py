"""Cached teacher outputs on the training device.

When a teacher's logits fit the device budget they are read once (every chunk checksum
verified) and kept whole on the device, as float16 or float32 as stored; a batch is an
index. Otherwise they stay in host memory (pinned on CUDA) and each batch's rows are
gathered there and copied ahead of use with a non-blocking transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from softlabels.engine.inputs import Batch
from softlabels.nonfinite import nonfinite_error, nonfinite_rows
from softlabels.stores.cache import Cache

__all__ = ["TeacherTargets", "load_targets"]

DEFAULT_DEVICE_BUDGET = 4 << 30  # bytes of targets kept on the device when it is not a GPU


@dataclass
class TeacherTargets:
    """One teacher's logits [N, V, C] (and optionally features), ready for batches."""

    name: str
    logits: torch.Tensor  # on the device (resident) or in (pinned) host memory
    features: torch.Tensor | None
    device: torch.device
    resident: bool

    @property
    def num_views(self) -> int:
        return int(self.logits.shape[1])

    def _gather(self, t: torch.Tensor, rows: np.ndarray, view: np.ndarray | None) -> torch.Tensor:
        v = np.zeros(len(rows), np.int64) if view is None else np.minimum(view, t.shape[1] - 1)
        if self.resident:
            r = torch.as_tensor(rows, device=self.device)
            return t[r, torch.as_tensor(v, device=self.device)].float()
        out = t[torch.as_tensor(rows), torch.as_tensor(v)]
        if self.device.type == "cuda":
            out = out.pin_memory()
        return out.to(self.device, non_blocking=True).float()

    def logits_for(self, rows: np.ndarray, view: np.ndarray | None = None) -> torch.Tensor:
        """float32 [B, C] teacher logits of the given rows and views."""
        return self._gather(self.logits, rows, view)

    def features_for(self, rows: np.ndarray, view: np.ndarray | None = None) -> torch.Tensor:
        if self.features is None:
            raise ValueError(f"teacher {self.name!r} has no cached features")
        return self._gather(self.features, rows, view)

    @property
    def feature_dim(self) -> int | None:
        return None if self.features is None else int(self.features.shape[-1])

    def batch_logits(self, batch: Batch) -> torch.Tensor:
        """The cached target of exactly the views this batch replays ([B, C], float32)."""
        return self.logits_for(batch.rows, batch.view)

    def batch_features(self, batch: Batch) -> torch.Tensor:
        return self.features_for(batch.rows, batch.view)


def _budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.4)
    return DEFAULT_DEVICE_BUDGET


def load_targets(
    cache: Cache,
    name: str,
    device: torch.device,
    *,
    features: bool = False,
    budget: int | None = None,
    progress: Any = None,
) -> TeacherTargets:
    """Read a teacher's arrays once (verified) and place them for training."""
    t = cache.teacher(name)
    arrays = {"logits": t.reader("logits").read_all()}
    if features:
        arrays["features"] = t.reader("features").read_all()
    for key, arr in arrays.items():
        rows = nonfinite_rows(arr)
        if len(rows):
            raise nonfinite_error(
                f"teacher {name!r} has NaN/Inf cached {key}",
                rows,
                "redo the dump of that teacher",
                names=cache.sample_ids,
            )
    nbytes = sum(a.nbytes for a in arrays.values())
    limit = _budget(device) if budget is None else budget
    resident = nbytes <= limit
    placed: dict[str, torch.Tensor] = {}
    for key, arr in arrays.items():
        tensor = torch.from_numpy(np.ascontiguousarray(arr))
        if resident:
            tensor = tensor.to(device)
        elif device.type == "cuda":
            tensor = tensor.pin_memory()
        placed[key] = tensor
    return TeacherTargets(
        name=name,
        logits=placed["logits"],
        features=placed.get("features"),
        device=device,
        resident=resident,
    )
