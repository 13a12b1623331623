"""Training batches: sampled, loaded and augmented once, then shared by every student.

Small datasets (the whole raw split fits comfortably) live on the device and are indexed
there; larger ones are loaded batch by batch by a thread pool ahead of use. Augmentation
is the dataset's seeded batched recipe, so it runs wherever the batch is.

With ``rank``/``world`` (DistributedDataParallel), every rank draws the same global batches
(same sampler and seed) and keeps its slice ``rows[rank::world]`` of each: it loads,
augments and gathers targets for its own rows only, while the global batch, and so the
averaged gradient, are those of one process.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from softlabels.data import Dataset, view_seeds
from softlabels.data.augment import uniform
from softlabels.data.mixing import Mix, draw, mix_views
from softlabels.engine.samplers import Sampler
from softlabels.errors import UsageError

__all__ = [
    "Batch",
    "BatchStream",
    "clean_outputs",
    "epoch_aligned_seeds",
    "epoch_seed",
    "predict",
    "replayed_views",
    "split_batches",
]

DEVICE_RESIDENT_BYTES = 2 << 30  # raw splits up to 2 GiB are kept on the device


def epoch_seed(seed: int, epoch: int) -> int:
    """Base seed of the augmentation of one epoch (a hash of seed and epoch)."""
    return int(view_seeds(seed, np.array([epoch]), 1)[0, 0])


def epoch_aligned_seeds(seed: int, rows: np.ndarray, num_views: int) -> np.ndarray:
    """Seeds ``uint64 [len(rows), num_views]`` of an epoch-aligned cache: view v of row i is
    the augmentation epoch v of an online run with data seed ``seed`` gives row i
    (METHODS §13), the seed :class:`BatchStream` draws for it."""
    cols = [view_seeds(epoch_seed(seed, v), rows, 1)[:, 0] for v in range(int(num_views))]
    return np.stack(cols, axis=1) if cols else np.zeros((len(rows), 0), np.uint64)


def replayed_views(
    schedule: str, num_views: int, epoch: int, seed: int, rows: np.ndarray
) -> np.ndarray:
    """The cached view (int64 [len(rows)]) each row replays in ``epoch``: view ``epoch mod
    V`` ("epoch": an epoch-aligned cache's views are the augmentations epochs 0..V-1 of an
    online run give), or one chosen by a hash of (seed, epoch, row) ("random")."""
    if schedule == "epoch":
        return np.full(len(rows), epoch % num_views, dtype=np.int64)
    if schedule != "random":
        raise ValueError(f"Expected schedule epoch or random, got {schedule!r}")
    u = uniform(np.uint64(epoch_seed(seed, epoch)), np.asarray(rows).astype(np.uint64))
    return np.minimum((u * num_views).astype(np.int64), num_views - 1)


def split_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """An epoch's order cut into batches of ``batch_size``, the last partial one dropped
    (a batch of 1 breaks batch norm, and samplers reshuffle every epoch, so no sample is
    dropped systematically); the whole order as one batch when it is shorter than that."""
    n = len(order)
    if n < batch_size:
        return [order]
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


@dataclass
class Batch:
    epoch: int
    step: int  # step within the epoch
    rows: np.ndarray  # dataset rows of this batch
    x: torch.Tensor  # model inputs on the device
    y: torch.Tensor  # labels on the device
    seeds: np.ndarray | None = None  # augmentation seed of each sample (None: clean inputs)
    view: np.ndarray | None = None  # cached view index of each sample (0 for a clean cache)
    extras: dict[str, Any] = field(default_factory=dict)
    global_size: int = 0  # rows of the global batch (all ranks); 0: this batch is all of it
    mix: Mix | None = None  # the mixed views of this batch (None: no view is mixed)
    partner_y: torch.Tensor | None = None  # labels of the partners (own label where unmixed)

    @property
    def labels(self) -> Any:
        """The hard labels the losses take: ``y``, or :class:`~softlabels.losses.MixedLabels`
        (y, the partner's label, lam) when views of this batch are mixed."""
        if self.mix is None or self.partner_y is None:
            return self.y
        from softlabels.losses import MixedLabels

        lam = torch.as_tensor(self.mix.lam, device=self.y.device)
        return MixedLabels(self.y, self.partner_y, lam)

    @property
    def share(self) -> float:
        """This rank's fraction of the global batch (1.0 for one process)."""
        return len(self.rows) / self.global_size if self.global_size else 1.0


class BatchStream:
    """The batches of each epoch for a sampler, loaded and augmented once."""

    def __init__(
        self,
        dataset: Dataset,
        sampler: Sampler,
        *,
        batch_size: int,
        device: torch.device,
        augment: bool = True,
        strength: str = "standard",
        seed: int = 0,
        workers: int = 2,
        cached_views: np.ndarray | None = None,
        schedule: str = "random",
        rank: int = 0,
        world: int = 1,
        mixing: Any = None,
        cached_mix: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"Expected 0 <= rank < world, got rank {rank}, world {world}")
        if world > 1 and min(batch_size, len(sampler)) < world:
            raise UsageError(
                f"Expected a batch size of at least one sample per process ({world}), got "
                f"{min(batch_size, len(sampler))}; raise --batch-size or start fewer processes"
            )
        self.rank = rank
        self.world = world
        self.dataset = dataset
        self.split = dataset.train
        self.sampler = sampler
        self.batch_size = batch_size
        self.device = device
        self.augment = augment
        self.strength = strength
        self.seed = seed
        self.workers = workers
        # Seeds [N, V] of a K-view cache: each epoch every sample replays one of its cached
        # views instead of a fresh augmentation: view ``epoch mod V`` ("epoch", the views of
        # an epoch-aligned cache are the augmentations epochs 0..V-1 of an online run give),
        # or one chosen by a hash of seed, epoch and row ("random").
        if schedule not in ("epoch", "random"):
            raise ValueError(f"Expected schedule epoch or random, got {schedule!r}")
        self.cached_views = cached_views
        self.schedule = schedule
        # Mixed views (a MixingInfo, METHODS §13): replayed from the cache's (partner, lam,
        # box) [N, V] with ``cached_mix``, else drawn from each fresh view's own seed (an
        # online run); the partner's input is its own unmixed view of the same index/epoch.
        if cached_mix is not None and cached_views is None:
            raise ValueError("Expected cached_views with cached_mix")
        self.mixing = mixing
        self.cached_mix = cached_mix
        self._spatial = tuple(dataset.input_shape[1:]) if mixing is not None else ()
        self._resident: torch.Tensor | None = None
        arr = self.split.array
        if arr is not None and arr.nbytes <= DEVICE_RESIDENT_BYTES:
            self._resident = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
        self._labels = torch.as_tensor(self.split.labels, device=device)

    def steps_per_epoch(self) -> int:
        n = len(self.sampler)
        return max(1, n // self.batch_size) if n >= self.batch_size else 1

    def _index_batches(self, epoch: int) -> list[np.ndarray]:
        return split_batches(self.sampler.epoch(epoch), self.batch_size)

    def _load(self, rows: np.ndarray) -> torch.Tensor:
        if self._resident is not None:
            return self._resident[torch.as_tensor(rows, device=self.device)]
        return self.split.load(rows).to(self.device, non_blocking=True)

    def _views(self, epoch: int, rows: np.ndarray) -> np.ndarray:
        """The cached view each row replays in ``epoch``."""
        assert self.cached_views is not None
        return replayed_views(self.schedule, self.cached_views.shape[1], epoch, self.seed, rows)

    def _mix(self, rows: np.ndarray, view: np.ndarray, seeds: np.ndarray | None) -> Mix | None:
        """The mix of this batch's views: the cached one of (row, view), or drawn from each
        fresh view's seed (None without mixing or augmentation)."""
        if self.mixing is None or seeds is None:
            return None
        if self.cached_mix is not None:
            partner, lam, box = self.cached_mix
            return Mix(partner[rows, view], lam[rows, view], box[rows, view])
        return draw(self.mixing, seeds, len(self.split), self._spatial)

    def _partner_views(
        self, partners: np.ndarray, mix: Mix, view: np.ndarray, base: int
    ) -> torch.Tensor:
        """The partners' own unmixed views: view ``v`` of row j for a cached view v of row i,
        the seed the epoch gives row j for a fresh one."""
        if self.cached_mix is not None:
            assert self.cached_views is not None
            seeds = self.cached_views[partners, view[mix.mixed]]
        else:
            seeds = view_seeds(base, partners, 1)[:, 0]
        return self.dataset.augment(self._load(partners), seeds, strength=self.strength)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        batches = self._index_batches(epoch)
        sizes = [len(rows) for rows in batches]
        if self.world > 1:
            # This rank's slice of every global batch (the rows it loads and trains on).
            batches = [rows[self.rank :: self.world] for rows in batches]
        base = epoch_seed(self.seed, epoch)
        pool = ThreadPoolExecutor(max(1, self.workers)) if self._resident is None else None
        queue: deque[Future[torch.Tensor]] = deque()
        try:
            if pool is not None:
                for rows in batches[:2]:
                    queue.append(pool.submit(self.split.load, rows))
            for step, rows in enumerate(batches):
                if pool is not None:
                    raw = queue.popleft().result().to(self.device, non_blocking=True)
                    if step + 2 < len(batches):
                        queue.append(pool.submit(self.split.load, batches[step + 2]))
                else:
                    raw = self._load(rows)
                seeds = None
                view = np.zeros(len(rows), dtype=np.int64)
                if self.cached_views is not None:
                    view = self._views(epoch, rows)
                    seeds = self.cached_views[rows, view]
                    x = self.dataset.augment(raw, seeds, strength=self.strength)
                elif self.augment:
                    seeds = view_seeds(base, rows, 1)[:, 0]
                    x = self.dataset.augment(raw, seeds, strength=self.strength)
                else:
                    x = self.dataset.clean(raw)
                mix = self._mix(rows, view, seeds)
                partner_y = None
                if mix is not None:
                    partners = functools.partial(self._partner_views, mix=mix, view=view, base=base)
                    x = mix_views(x, mix, partners)
                    own = np.where(mix.mixed, mix.partner, rows).astype(np.int64)
                    partner_y = self._labels[torch.as_tensor(own, device=self.device)]
                y = self._labels[torch.as_tensor(rows, device=self.device)]
                yield Batch(
                    epoch=epoch,
                    step=step,
                    rows=rows,
                    x=x,
                    y=y,
                    seeds=seeds,
                    view=view,
                    global_size=sizes[step] if self.world > 1 else 0,
                    mix=mix,
                    partner_y=partner_y,
                )
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def clean_outputs(
    dataset: Dataset,
    split: str,
    fn: Callable[[torch.Tensor], Any],
    *,
    device: torch.device,
    batch_size: int = 512,
) -> torch.Tensor:
    """``fn`` over a split's clean (evaluation-transform) inputs in batches, concatenated
    on the host as float32 (``fn`` returns a tensor, or a tuple whose first item is one)."""
    part = dataset.split(split)
    outs = []
    with torch.inference_mode():
        for start in range(0, len(part), batch_size):
            rows = np.arange(start, min(len(part), start + batch_size))
            z = fn(dataset.clean(part.load(rows).to(device)))
            outs.append(z.float().cpu())  # sync: one per batch
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def predict(
    model: torch.nn.Module,
    dataset: Dataset,
    split: str = "test",
    *,
    device: torch.device,
    batch_size: int = 512,
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """Logits of ``model`` (eval mode) on a split's clean inputs, as float32 [N, C]."""
    was_training = model.training
    model.eval()
    try:
        out = clean_outputs(
            dataset,
            split,
            (lambda x: forward(model, x)) if forward is not None else model,
            device=device,
            batch_size=batch_size,
        )
    finally:
        model.train(was_training)
    return out.numpy() if len(out) else np.zeros((0, dataset.num_classes), np.float32)
