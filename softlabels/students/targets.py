"""Cached teacher outputs on the training device.

When a teacher's logits fit the device budget they are read once (every chunk checksum
verified) and kept whole on the device, as float16 or float32 as stored; a batch is an
index. Otherwise they stay in host memory (pinned on CUDA) and each batch's rows are
gathered there and copied ahead of use with a non-blocking transfer.

A sparse (top-k) teacher is held the same way as its stored arrays (K values, K ids and
the rest's statistics per view, never ``[N, V, C]``); :class:`SparseTargets` rebuilds each
batch's ``[B, C]`` targets where they are used, as the rule's dense view
(:func:`softlabels.stores.topk.dense_view`): logits whose softmax at any temperature (and
DiVE's power) is the rule's rebuilt distribution, so every loss takes them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from softlabels.engine.inputs import Batch
from softlabels.nonfinite import nonfinite_error, nonfinite_rows
from softlabels.stores.cache import Cache
from softlabels.stores.reader import ArrayReader

__all__ = [
    "PairProfiles",
    "SparseTargets",
    "TeacherTargets",
    "check_finite",
    "load_targets",
    "placeable",
    "target_readers",
]

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
        return _gather(t, rows, view, self.device, self.resident).float()

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


def _gather(
    t: torch.Tensor, rows: np.ndarray, view: np.ndarray | None, device: torch.device, resident: bool
) -> torch.Tensor:
    """``t[rows, view]`` on ``device`` (view 0 when None; views past the last one clamp to it),
    in ``t``'s dtype."""
    v = np.zeros(len(rows), np.int64) if view is None else np.minimum(view, t.shape[1] - 1)
    if resident:
        r = torch.as_tensor(rows, device=device)
        return t[r, torch.as_tensor(v, device=device)]
    out = t[torch.as_tensor(rows), torch.as_tensor(v)]
    if device.type == "cuda":
        out = out.pin_memory()
    return out.to(device, non_blocking=True)


@dataclass
class SparseTargets(TeacherTargets):
    """A sparse teacher: top-k values and ids ``[N, V, K]`` and the rest's statistics
    ``[N, V, R]``; each batch's targets are the rule's dense view ``[B, C]`` float32, built
    on the device from the batch's rows only. ``logits`` holds the values (for
    :attr:`num_views`)."""

    indices: torch.Tensor | None = None
    rest: torch.Tensor | None = None
    num_classes: int = 0
    profiles: PairProfiles | None = None  # rule label-profile; None: equal-rest (v1)

    def logits_for(self, rows: np.ndarray, view: np.ndarray | None = None) -> torch.Tensor:
        """float32 [B, C]: the rule's dense view of the given rows and views, whose softmax at
        temperature T is the rebuilt distribution at T (and at T/p under DiVE's power p)."""
        from softlabels.stores.topk import dense_view

        assert self.indices is not None and self.rest is not None
        parts = (
            _gather(t, rows, view, self.device, self.resident)
            for t in (self.logits, self.indices, self.rest)
        )
        prof = None if self.profiles is None else self.profiles.for_rows(rows, view)
        return dense_view(*parts, self.num_classes, prof)


@dataclass
class PairProfiles:
    """A sparse teacher's rest profile ``[P, C]`` and what picks a (row, view) pair's
    profile (its row's label; a mixed view's partner label and lam), on the device: each
    batch's ``[B, C]`` profiles for the rule's dense view (stores/topk.py)."""

    table: torch.Tensor
    labels: torch.Tensor  # [N] int64
    partner_labels: torch.Tensor | None  # [N, V] int64 (mixed views)
    lam: torch.Tensor | None  # [N, V] float32 (mixed views)

    @classmethod
    def of(cls, cache: Cache, name: str, device: torch.device) -> PairProfiles | None:
        """The teacher's profiles placed on ``device``; None for a rule without one."""
        table = cache.teacher(name).rest_profile()
        if table is None:
            return None
        mix = cache.mix_labels() if cache.mixing is not None else None

        def place(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        return cls(
            table=place(table.astype(np.float32)),
            labels=place(cache.labels.astype(np.int64)),
            partner_labels=None if mix is None else place(mix[0].astype(np.int64)),
            lam=None if mix is None else place(mix[1].astype(np.float32)),
        )

    def for_rows(self, rows: np.ndarray, view: np.ndarray | None) -> torch.Tensor:
        """float32 [B, C]: the profiles of the pairs (rows, views); views as :func:`_gather`."""
        from softlabels.stores.topk import pair_profiles

        dev = self.table.device
        r = torch.as_tensor(np.asarray(rows, np.int64), device=dev)
        own = self.labels[r]
        if self.lam is None or self.partner_labels is None:
            return pair_profiles(self.table, own)
        last = self.lam.shape[1] - 1
        v = np.zeros(len(rows), np.int64) if view is None else np.minimum(view, last)
        at = torch.as_tensor(v, device=dev)
        return pair_profiles(self.table, own, self.partner_labels[r, at], self.lam[r, at])


def _budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.4)
    return DEFAULT_DEVICE_BUDGET


def target_readers(cache: Cache, name: str, *, features: bool = False) -> dict[str, ArrayReader]:
    """The verified readers of the arrays a teacher's targets are made of: ``logits`` (a
    dense teacher), or ``logits``/``indices``/``rest`` (a sparse one's top-k values, ids
    and rest statistics); ``features`` too when asked."""
    from softlabels.stores.schema import LOGITS, TOPK_INDICES, TOPK_REST, TOPK_VALUES

    t = cache.teacher(name)
    stored = {"logits": LOGITS}
    if t.info.sparse:
        t.check_rule()  # before any read
        stored = {"logits": TOPK_VALUES, "indices": TOPK_INDICES, "rest": TOPK_REST}
    readers = {key: t.reader(what) for key, what in stored.items()}
    if features:
        readers["features"] = t.reader("features")
    return readers


def check_finite(cache: Cache, name: str, key: str, arr: np.ndarray, first_row: int = 0) -> None:
    """Refuse NaN/Inf cached values (ids are never checked) of rows ``first_row...``."""
    if key == "indices":
        return
    rows = nonfinite_rows(arr)
    if len(rows):
        raise nonfinite_error(
            f"teacher {name!r} has NaN/Inf cached {key}",
            rows + first_row,
            "redo the dump of that teacher",
            names=cache.sample_ids,
        )


def placeable(arr: np.ndarray) -> np.ndarray:
    """``arr`` in a dtype torch indexes well (uint16 ids become int32)."""
    return arr.astype(np.int32) if arr.dtype == np.uint16 else arr


def load_targets(
    cache: Cache,
    name: str,
    device: torch.device,
    *,
    features: bool = False,
    budget: int | None = None,
    progress: Any = None,
) -> TeacherTargets:
    """Read a teacher's arrays once (verified) and place them for training: a
    :class:`TeacherTargets`, or :class:`SparseTargets` for a sparse teacher."""
    readers = target_readers(cache, name, features=features)
    arrays = {key: reader.read_all() for key, reader in readers.items()}
    for key, arr in arrays.items():
        check_finite(cache, name, key, arr)
    nbytes = sum(a.nbytes for a in arrays.values())
    limit = _budget(device) if budget is None else budget
    resident = nbytes <= limit
    placed: dict[str, torch.Tensor] = {}
    for key, arr in arrays.items():
        tensor = torch.from_numpy(np.ascontiguousarray(placeable(arr)))
        if resident:
            tensor = tensor.to(device)
        elif device.type == "cuda":
            tensor = tensor.pin_memory()
        placed[key] = tensor
    if cache.teacher(name).info.sparse:
        return SparseTargets(
            name=name,
            logits=placed["logits"],
            features=placed.get("features"),
            device=device,
            resident=resident,
            indices=placed["indices"],
            rest=placed["rest"],
            num_classes=cache.num_classes,
            profiles=PairProfiles.of(cache, name, device),
        )
    return TeacherTargets(
        name=name,
        logits=placed["logits"],
        features=placed.get("features"),
        device=device,
        resident=resident,
    )
