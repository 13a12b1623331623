"""A cache in any training loop: a PyTorch dataset of the exact cached views.

:class:`CachedDataset` over (dataset, cache, teacher) yields ``(x, y, target, index)``:
``x`` the input the teacher labelled (regenerated from the cached view seed with the
dataset's seeded ``augment``), ``y`` its label, ``target`` the teacher's cached logits
of that view (or its probabilities at a temperature) and ``index`` the row. On a cache
with mixed views (``dump --mixup/--cutmix``) ``x`` is the mixed view and items carry two
more fields, ``(x, y, target, index, partner_y, lam)``: the partner's label (``y`` where
the view is not mixed) and the share ``lam`` of ``y`` (1.0 where not mixed). Which view a
row replays follows the epoch (:meth:`CachedDataset.set_epoch`) exactly as ``softlabels
distill`` replays it (:func:`softlabels.engine.inputs.replayed_views`).

:class:`CachedBatchSampler` yields the batches ``softlabels distill`` trains on for a
sampler, batch size and data seed (and a rank's slice of them under DDP), so a loop of
your own can reproduce a distilled student exactly.

Both work with ``DataLoader(num_workers > 0)`` (fork or spawn: the open cache and a
dataset given by spec are rebuilt in each worker; the teacher targets, read once with
every checksum verified, travel as a tensor that torch shares between processes) and
with ``DistributedSampler``. The epoch lives in shared memory, so ``set_epoch`` also
reaches ``persistent_workers``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from softlabels.errors import UsageError

if TYPE_CHECKING:
    from softlabels.data import Dataset
    from softlabels.stores.cache import Cache

__all__ = ["VIEWS", "CachedBatchSampler", "CachedDataset"]

VIEWS = ("auto", "epoch", "random", "clean")
Item = tuple[Any, ...]  # (x, y, target, index), + (partner_y, lam) with mixed views


class CachedDataset(TorchDataset[Item]):
    """Item i: ``(x, y, target, index)`` of row i in the current epoch.

    * ``dataset``: a dataset spec (``"cifar100-lt:imb=100"``) or a loaded
      :class:`softlabels.data.Dataset`; it must be the one the cache was built from
      (fingerprint and augmentation recipe are checked).
    * ``cache``: a path or URL, or an opened :class:`~softlabels.stores.cache.Cache`.
    * ``teacher``: a teacher of the cache (default: its only one).
    * ``views``: ``"epoch"`` (view ``epoch mod V``, the views of an epoch-aligned cache),
      ``"random"`` (the view ``distill`` picks by a hash of ``seed``, epoch and row),
      ``"clean"`` (the evaluation-transform input and view 0's target: a clean cache's
      only view; with an augmented cache the target is that of an augmented view), or
      ``"auto"``: the cache's own (clean for a clean cache, its recorded schedule else;
      ``"random"`` for caches from before the schedule was recorded).
    * ``seed``: the data seed of ``"random"`` (default: the dump's view seed).
    * ``temperature``: return ``softmax(target / T)`` instead of logits.
    * ``replay_views``: replay only the first N cached views (``distill --replay-views``).

    ``x`` is float32 on the CPU, ``y`` and ``index`` are ints, ``target`` float32 [C]: the
    default collate makes batches of them.
    """

    def __init__(
        self,
        dataset: str | Dataset,
        cache: str | Cache,
        *,
        teacher: str | None = None,
        views: str = "auto",
        seed: int | None = None,
        temperature: float | None = None,
        replay_views: int | None = None,
    ) -> None:
        from softlabels.caches import check_dataset, check_recipe, open_cache

        if views not in VIEWS:
            raise UsageError(f"Expected views {', '.join(VIEWS)}, got {views!r}")
        if temperature is not None and not temperature > 0:
            raise UsageError(f"Expected temperature > 0 (or None for logits), got {temperature}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise UsageError(f"Expected seed None or an integer >= 0, got {seed!r}")
        opened = open_cache(cache) if isinstance(cache, str) else cache
        self._url = opened.url
        self._cache: Cache | None = opened
        self._spec: str | None = dataset if isinstance(dataset, str) else None
        self._dataset: Dataset | None = None if isinstance(dataset, str) else dataset
        ds = self.dataset
        self.split = str(opened.dataset.split or "train")
        check_dataset(opened, ds, self.split)
        self.teacher = _teacher_name(opened, teacher)
        opened.require_complete(self.teacher)
        self.views = _resolve_views(opened, views)
        if self.views != "clean":
            check_recipe(opened, ds)
        self.seed = int(seed if seed is not None else opened.views.seed or 0)
        self.temperature = None if temperature is None else float(temperature)
        self.strength = opened.views.strength or "standard"
        self.num_views = _replayed(opened.num_views, replay_views)
        self.num_classes = int(ds.num_classes)
        self.labels = np.asarray(ds.split(self.split).labels, dtype=np.int64)
        # Seeds and targets: read once here, every chunk's checksum verified.
        self._seeds = opened.read_view_seeds() if self.views != "clean" else None
        self._targets = _load_targets(opened, self.teacher)
        # Mixed views: (partner, lam, box) [N, V], read once (verified); None without.
        self._mix = opened.read_mix() if self.views != "clean" else None
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    # -- what a worker rebuilds: the open cache, and a dataset given by its spec
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = None
        if self._spec is not None:
            state["_dataset"] = None
        return state

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            from softlabels.caches import open_cache

            self._cache = open_cache(self._url)
        return self._cache

    @property
    def dataset(self) -> Dataset:
        """The softlabels dataset (splits, ``input_shape``, ``class_counts``, ``test``)."""
        if self._dataset is None:
            from softlabels.data import load_dataset

            assert self._spec is not None
            self._dataset = load_dataset(self._spec)
        return self._dataset

    # -- epochs and views
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Replay the views of ``epoch`` from now on (in this process and its workers)."""
        if not isinstance(epoch, int | np.integer) or epoch < 0:
            raise UsageError(f"Expected an epoch >= 0, got {epoch!r}")
        self._epoch.fill_(int(epoch))

    def views_of(self, rows: Sequence[int] | np.ndarray, epoch: int | None = None) -> np.ndarray:
        """The cached view (int64) each row replays in ``epoch`` (default: the current one)."""
        from softlabels.engine.inputs import replayed_views

        rows = np.asarray(rows, dtype=np.int64)
        if self.views == "clean":
            return np.zeros(len(rows), dtype=np.int64)
        e = self.epoch if epoch is None else int(epoch)
        return replayed_views(self.views, self.num_views, e, self.seed, rows)

    # -- items
    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Item:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Item]:
        """A batch of items, loaded and augmented together (the DataLoader calls this)."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            bad = int(rows[(rows < 0) | (rows >= n)][0])
            raise IndexError(f"Expected rows in [0, {n}), got {bad}")
        x, target = self.batch(rows)
        items = [(x[i], int(self.labels[r]), target[i], int(r)) for i, r in enumerate(rows)]
        if self._mix is None:
            return items
        partner_y, lam = self.mix_labels(rows)
        return [(*it, int(p), float(w)) for it, p, w in zip(items, partner_y, lam, strict=True)]

    @property
    def mixed(self) -> bool:
        """Whether the replayed views may be mixed (items then carry partner_y and lam)."""
        return self._mix is not None

    def mix_of(self, rows: Sequence[int] | np.ndarray, epoch: int | None = None) -> Any:
        """The :class:`~softlabels.data.mixing.Mix` (partner, lam, box) of the views ``rows``
        replay in ``epoch`` (None without mixed views)."""
        if self._mix is None:
            return None
        from softlabels.data.mixing import Mix

        rows = np.asarray(rows, dtype=np.int64)
        view = self.views_of(rows, epoch)
        partner, lam, box = self._mix
        return Mix(partner[rows, view], lam[rows, view], box[rows, view])

    def mix_labels(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(partner_y, lam)`` of ``rows`` in the current epoch: the partner's label (the
        row's own where not mixed) and the share of the row's own label."""
        rows = np.asarray(rows, dtype=np.int64)
        mix = self.mix_of(rows)
        if mix is None:
            return self.labels[rows], np.ones(len(rows), np.float32)
        return self.labels[np.where(mix.mixed, mix.partner, rows)], mix.lam

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs [B, ...] (mixed views mixed) and targets [B, C] of ``rows`` in the current
        epoch."""
        from softlabels.data.mixing import mix_views

        ds = self.dataset
        split = ds.split(self.split)
        raw = split.load(rows)
        view = self.views_of(rows)
        if self._seeds is None:
            x = ds.clean(raw)
        else:
            seeds = self._seeds
            x = ds.augment(raw, seeds[rows, view], strength=self.strength)
            mix = self.mix_of(rows)
            if mix is not None:
                v = view[mix.mixed]  # the partners' own views: the same view index

                def partner_views(partners: np.ndarray) -> torch.Tensor:
                    s = seeds[partners, v]
                    return ds.augment(split.load(partners), s, strength=self.strength)

                x = mix_views(x, mix, partner_views)
        target = self._targets.logits_for(rows, view)
        if self.temperature is not None:
            target = torch.softmax(target / self.temperature, dim=-1)
        return x, target

    def __repr__(self) -> str:
        return (
            f"CachedDataset({self._url!r}, teacher={self.teacher!r}, views={self.views!r}, "
            f"N={len(self)}, V={self.num_views}, epoch={self.epoch})"
        )


class CachedBatchSampler(Sampler[list[int]]):
    """The batches ``softlabels distill`` trains on: ``make_sampler(sampler, labels, C,
    seed).epoch(e)`` cut into full batches (the last partial one dropped), and with
    ``world`` > 1 this rank's slice ``batch[rank::world]`` of each.

    ``DataLoader(data, batch_sampler=CachedBatchSampler(data, 64, seed=s))`` with
    ``set_epoch(e)`` on both each epoch gives the batches of ``distill --data-seed s``.
    """

    def __init__(
        self,
        data: CachedDataset,
        batch_size: int,
        *,
        sampler: str = "instance",
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        from softlabels.engine.samplers import make_sampler

        if batch_size < 1:
            raise UsageError(f"Expected batch_size >= 1, got {batch_size}")
        if not 0 <= rank < world:
            raise UsageError(f"Expected 0 <= rank < world, got rank {rank}, world {world}")
        if min(batch_size, len(data)) < world:
            raise UsageError(
                f"Expected a batch size of at least one sample per process ({world}), "
                f"got {min(batch_size, len(data))}"
            )
        self.sampler = make_sampler(sampler, data.labels, data.num_classes, seed)
        self.batch_size = int(batch_size)
        self.rank, self.world = int(rank), int(world)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's rows of every batch of ``epoch`` (default: the current one)."""
        from softlabels.engine.inputs import split_batches

        order = self.sampler.epoch(self.epoch if epoch is None else int(epoch))
        return [b[self.rank :: self.world] for b in split_batches(order, self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        for rows in self.batches():
            yield rows.tolist()

    def __len__(self) -> int:
        return len(self.batches())


def _teacher_name(cache: Cache, teacher: str | None) -> str:
    names = cache.teacher_names
    if teacher is None:
        if len(names) != 1:
            raise UsageError(f"Expected teacher= one of {', '.join(names)}, got none")
        return names[0]
    cache.teacher(teacher)  # a one-line error listing the teachers when unknown
    return teacher


def _resolve_views(cache: Cache, views: str) -> str:
    augmented = cache.views.mode == "augmented"
    if views == "auto":
        return (cache.views.schedule or "random") if augmented else "clean"
    if views != "clean" and not augmented:
        raise UsageError(
            f'Expected views="clean" for {cache.url} (it holds clean outputs only; dump it '
            f'with --views K for replayable views), got views="{views}"'
        )
    return views


def _replayed(cached: int, replay_views: int | None) -> int:
    if replay_views is None:
        return int(cached)
    if not 1 <= replay_views <= cached:
        raise UsageError(f"Expected replay_views in [1, {cached}], got {replay_views}")
    return int(replay_views)


class _SparseTargets:
    """A teacher stored sparse (top-k): dense logits rebuilt for each batch's rows."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self._arrays: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "name": self.name, "_arrays": None}

    def logits_for(self, rows: np.ndarray, view: np.ndarray) -> torch.Tensor:
        if self._arrays is None:
            from softlabels.caches import open_cache

            self._arrays = open_cache(self.url).teacher(self.name)
        dense = np.asarray(self._arrays.dense_logits(rows))  # [B, V, C]
        picked = dense[np.arange(len(rows)), view]
        return torch.from_numpy(np.ascontiguousarray(picked, dtype=np.float32))


def _load_targets(cache: Cache, name: str) -> Any:
    """Dense logits: read whole once (verified, checked finite), as ``distill`` reads them;
    a sparse teacher: rebuilt per batch by its own reader."""
    if getattr(cache.teacher(name), "storage", "dense") == "topk":
        return _SparseTargets(cache.url, name)
    from softlabels.students.targets import load_targets

    return load_targets(cache, name, torch.device("cpu"))
