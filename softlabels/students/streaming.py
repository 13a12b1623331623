"""Teacher targets larger than memory, streamed chunk by chunk (``distill --target-memory``).

When a teacher's cached arrays exceed the budget they are never read whole. The students
of a pass then visit rows in the order of a :class:`~softlabels.engine.chunk_sampler.
ChunkSampler` (chunks permuted, windows of ``buffer`` chunks, rows permuted within each
window), and a :class:`StreamedTargets` follows that order: a background thread
(:class:`ChunkPrefetcher`) reads, verifies (checksums, NaN/Inf) and decodes the chunks in
the epoch's chunk order, at most ``prefetch`` chunks ahead of the window in use. So at
any moment at most ``buffer + prefetch`` decoded chunks are held per teacher, whatever N:
peak memory is set by the budget (see :func:`plan_stream`), not by the cache.

A batch's targets are gathered once from the chunks of its window(s) and kept until the
next batch, so every student of the pass (and a method asking for features as well as
logits) reads the same rows without a second read. The order, and so every student, is
exactly that of the same chunk sampler over targets held whole: streaming changes where
the targets live, not the maths.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from softlabels.engine.chunk_sampler import ChunkSampler
from softlabels.engine.inputs import Batch
from softlabels.errors import UsageError
from softlabels.students.targets import PairProfiles, check_finite, placeable, target_readers

__all__ = [
    "DEFAULT_PREFETCH",
    "ChunkPrefetcher",
    "ResidentCount",
    "StreamPlan",
    "StreamedTargets",
    "bound_allocator",
    "plan_stream",
    "targets_bytes",
]

DEFAULT_PREFETCH = 2  # decoded chunks read ahead of the window in use
DEFAULT_BUFFER = 8  # chunks per window of the chunk order when the budget does not set it

Chunk = dict[str, np.ndarray]


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_FLOOR = 1 << 20
_MMAP_CEILING = 32 << 20  # glibc's largest dynamic threshold


def bound_allocator(chunk_bytes: int) -> bool:
    """Have glibc map chunk-sized buffers on their own, so a dropped chunk goes back to the
    system at once. Left alone, glibc raises its mmap threshold after the first such free
    and serves later chunks from its heap, whose fragmentation held up to twice the budget
    in our measurements. A process-wide setting (allocations of at least half a chunk,
    1 to 32 MiB); skipped off glibc and when ``MALLOC_MMAP_THRESHOLD_`` is set."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    threshold = min(max(chunk_bytes // 2, _MMAP_FLOOR), _MMAP_CEILING)
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


class ResidentCount:
    """Decoded chunks held now (read ahead or in the window in use), and the most ever."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.decoded = 0  # chunks decoded in all

    def add(self, n: int) -> None:
        with self._lock:
            self.now += n
            self.peak = max(self.peak, self.now)
            if n > 0:
                self.decoded += n


class ChunkPrefetcher:
    """Reads ``order``'s chunks on a background thread, at most ``depth`` ahead of
    :meth:`get` (a slot is taken before a chunk is read and given back when it is taken)."""

    def __init__(
        self,
        read: Callable[[int], Chunk],
        order: Sequence[int],
        depth: int,
        count: ResidentCount,
    ) -> None:
        if depth < 1:
            raise ValueError(f"Expected a prefetch depth >= 1, got {depth}")
        self._read = read
        self._order = [int(c) for c in order]
        self._slots = threading.Semaphore(depth)
        self._queue: queue.SimpleQueue[tuple[int, Chunk | None, BaseException | None]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._count = count
        self._taken = 0
        self._thread = threading.Thread(target=self._run, name="softlabels-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for c in self._order:
                while not self._slots.acquire(timeout=0.05):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                data = self._read(c)
                self._count.add(1)
                self._queue.put((c, data, None))
                del data  # the consumer's now: freed when it drops the chunk
        except BaseException as exc:  # handed to the consumer, raised there
            self._queue.put((-1, None, exc))

    def get(self) -> tuple[int, Chunk]:
        """The next chunk of the order (its index and arrays); read errors raise here."""
        if self._taken >= len(self._order):
            raise RuntimeError("every chunk of this order was already taken")
        c, data, exc = self._queue.get()
        if exc is not None:
            raise exc
        assert data is not None
        self._taken += 1
        self._slots.release()
        return c, data

    def close(self) -> None:
        """Stop reading and drop what was read ahead."""
        self._stop.set()
        self._thread.join()
        while True:
            try:
                _c, data, _exc = self._queue.get_nowait()
            except queue.Empty:
                break
            if data is not None:
                self._count.add(-1)


@dataclass(frozen=True)
class StreamPlan:
    """How streamed targets are held: windows of ``buffer`` chunks, ``prefetch`` ahead."""

    buffer: int
    prefetch: int
    chunk_bytes: int  # one chunk of every streamed teacher's arrays
    total_bytes: int  # every used teacher's arrays whole
    budget: int


def _row_bytes(reader: Any) -> int:
    shape = reader.shape
    per_row = int(np.prod(shape[1:], dtype=np.int64))
    dtype = placeable(np.zeros(0, reader.dtype)).dtype
    return per_row * dtype.itemsize


def targets_bytes(cache: Any, used: dict[str, bool]) -> tuple[int, int]:
    """(all rows, one chunk's rows) bytes of the arrays of the teachers ``used`` (name ->
    with features), as they are held for training."""
    total = chunk = 0
    for name, features in used.items():
        for reader in target_readers(cache, name, features=features).values():
            row = _row_bytes(reader)
            total += row * int(reader.shape[0])
            chunk += row * reader.chunk_rows
    return total, chunk


def plan_stream(
    cache: Any,
    used: dict[str, bool],
    budget: int | None,
    *,
    buffer: int | None = None,
    prefetch: int = DEFAULT_PREFETCH,
) -> StreamPlan | None:
    """None when the teachers' arrays fit ``budget`` (or there is none): they are read
    whole as before. Else the plan that keeps ``(buffer + prefetch)`` chunks of every
    teacher within the budget (``buffer``: as many chunks as fit, unless given)."""
    if budget is None or not used:
        return None
    total, chunk = targets_bytes(cache, used)
    if total <= budget:
        return None
    if prefetch < 1:
        raise UsageError(f"Expected a prefetch of at least 1 chunk, got {prefetch}")
    fits = budget // max(1, chunk)
    if buffer is None:
        buffer = int(fits) - prefetch
    num_chunks = -(-int(cache.num_samples) // int(cache.chunk_size))
    if buffer < 1 or (buffer + prefetch) * chunk > budget:
        need = (max(1, buffer) + prefetch) * chunk
        raise UsageError(
            f"Expected --target-memory of at least {_size(need)} (a shuffle buffer of "
            f"{max(1, buffer)} chunk(s) + {prefetch} read ahead, {_size(chunk)} per chunk of "
            f"the teachers' arrays), got {_size(budget)}"
        )
    return StreamPlan(
        buffer=min(int(buffer), num_chunks),
        prefetch=int(prefetch),
        chunk_bytes=int(chunk),
        total_bytes=int(total),
        budget=int(budget),
    )


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


class StreamedTargets:
    """One teacher's targets read chunk by chunk in a :class:`ChunkSampler`'s order.

    The same batch interface as :class:`~softlabels.students.targets.TeacherTargets`
    (:meth:`batch_logits`, :meth:`batch_features`); :meth:`bind` it to the sampler of the
    pass before the first batch. Batches must come in that sampler's order (any rank's
    slice of it, epochs ascending)."""

    resident = False
    streamed = True

    def __init__(
        self,
        cache: Any,
        name: str,
        device: torch.device,
        *,
        features: bool = False,
        prefetch: int = DEFAULT_PREFETCH,
    ) -> None:
        self.cache = cache
        self.name = name
        self.device = device
        self.prefetch = int(prefetch)
        self._readers = target_readers(cache, name, features=features)
        first = self._readers["logits"]
        self.chunk_rows = int(first.chunk_rows)
        bound_allocator(min(_row_bytes(r) for r in self._readers.values()) * self.chunk_rows)
        self.sparse = bool(cache.teacher(name).info.sparse)
        self.num_classes = int(cache.num_classes)
        self.profiles = PairProfiles.of(cache, name, device) if self.sparse else None
        self.count = ResidentCount()
        self._sampler: ChunkSampler | None = None
        self._prefetcher: ChunkPrefetcher | None = None
        self._epoch: int | None = None
        self._window_of: np.ndarray = np.zeros(0, np.int64)
        self._current = -1
        self._held: dict[int, Chunk] = {}
        self._memo_key: tuple[int, int] | None = None
        self._memo: dict[str, torch.Tensor] = {}

    # -- what the methods use
    @property
    def num_views(self) -> int:
        return int(self._readers["logits"].shape[1])

    @property
    def features(self) -> Any:
        return self._readers.get("features")

    @property
    def feature_dim(self) -> int | None:
        f = self._readers.get("features")
        return None if f is None else int(f.shape[-1])

    def batch_logits(self, batch: Batch) -> torch.Tensor:
        """float32 [B, C]: the cached target of the views this batch replays (a sparse
        teacher's dense view, as :class:`~softlabels.students.targets.SparseTargets`)."""
        parts = self._rows_of(batch)
        view = self._view(batch, parts["logits"])
        if not self.sparse:
            return parts["logits"][self._arange(view), view].float()
        from softlabels.stores.topk import dense_view

        at = self._arange(view)
        return dense_view(
            parts["logits"][at, view],
            parts["indices"][at, view],
            parts["rest"][at, view],
            self.num_classes,
            None if self.profiles is None else self.profiles.for_rows(batch.rows, batch.view),
        )

    def batch_features(self, batch: Batch) -> torch.Tensor:
        if "features" not in self._readers:
            raise ValueError(f"teacher {self.name!r} has no cached features")
        feats = self._rows_of(batch)["features"]
        view = self._view(batch, feats)
        return feats[self._arange(view), view].float()

    # -- the stream
    def bind(self, sampler: ChunkSampler) -> None:
        """Follow ``sampler``'s order from now on (a new pass)."""
        if sampler.chunk_rows != self.chunk_rows:
            raise ValueError(
                f"Expected a chunk sampler of {self.chunk_rows} rows per chunk, got {sampler.chunk_rows}"
            )
        self.close()
        self._sampler = sampler

    def close(self) -> None:
        """Stop reading ahead and drop every held chunk."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None
        self._drop_held()
        self._epoch = None
        self._memo_key, self._memo = None, {}

    def _drop_held(self) -> None:
        self.count.add(-len(self._held))
        self._held = {}

    def _read_chunk(self, c: int) -> Chunk:
        out = {}
        for key, reader in self._readers.items():
            arr = reader.read_chunk(c)
            check_finite(self.cache, self.name, key, arr, first_row=c * self.chunk_rows)
            out[key] = placeable(arr)
        return out

    def _begin(self, epoch: int) -> None:
        assert self._sampler is not None
        self.close()
        order = self._sampler.chunk_order(epoch)
        self._window_of = self._sampler.window_of_chunk(epoch)
        self._current = -1
        self._epoch = epoch
        self._prefetcher = ChunkPrefetcher(self._read_chunk, order, self.prefetch, self.count)

    def _advance(self, window: int) -> None:
        """Hold exactly the chunks of ``window`` (those of earlier windows are dropped)."""
        if window == self._current:
            return
        assert self._prefetcher is not None
        self._drop_held()
        self._current = window
        need = set(np.flatnonzero(self._window_of == window).tolist())
        while not need <= self._held.keys():
            c, data = self._prefetcher.get()
            if self._window_of[c] < window:  # a window no row of this rank used
                self.count.add(-1)
                continue
            self._held[c] = data

    def _rows_of(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Every array's rows of this batch, all views ([B, V, ...] on the device)."""
        key = (int(batch.epoch), int(batch.step))
        if key == self._memo_key:
            return self._memo
        if self._sampler is None:
            raise RuntimeError(f"streamed teacher {self.name!r} is not bound to a chunk sampler")
        if batch.epoch != self._epoch:
            self._begin(int(batch.epoch))
        rows = np.asarray(batch.rows, dtype=np.int64)
        chunks = rows // self.chunk_rows
        windows = self._window_of[chunks]
        if len(rows) and (windows[0] < self._current or np.any(np.diff(windows) < 0)):
            raise RuntimeError(
                f"streamed teacher {self.name!r}: batch {key} is not in the chunk sampler's order"
            )
        out = {
            k: np.empty((len(rows), *r.shape[1:]), placeable(np.zeros(0, r.dtype)).dtype)
            for k, r in self._readers.items()
        }
        for w in np.unique(windows):
            self._advance(int(w))
            at = np.flatnonzero(windows == w)
            for c in np.unique(chunks[at]):
                sel = at[chunks[at] == c]
                local = rows[sel] - int(c) * self.chunk_rows
                data = self._held[int(c)]
                for k in out:
                    out[k][sel] = data[k][local]
        self._memo_key = key
        self._memo = {k: self._place(v) for k, v in out.items()}
        return self._memo

    def _place(self, arr: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(arr)
        if self.device.type == "cuda":
            t = t.pin_memory()
        return t.to(self.device, non_blocking=True)

    def _view(self, batch: Batch, t: torch.Tensor) -> torch.Tensor:
        n = len(batch.rows)
        v = np.zeros(n, np.int64) if batch.view is None else np.minimum(batch.view, t.shape[1] - 1)
        return torch.as_tensor(v, device=t.device)

    @staticmethod
    def _arange(view: torch.Tensor) -> torch.Tensor:
        return torch.arange(len(view), device=view.device)
