"""A chunk-shuffled instance sampler: the order a cache larger than memory can be read in.

The N rows are cut into chunks of ``chunk_rows`` (the cache's row chunks). Each epoch the
chunks are permuted, the permutation is cut into windows of ``buffer`` consecutive chunks,
and the rows of each window are permuted; the epoch's order is the windows one after the
other. So every row is visited exactly once per epoch, only one window's chunks are
needed at a time (the shuffle buffer), and the order is a function of (seed, epoch) only:
the generator of epoch e is ``np.random.Generator(PCG64([seed, e, 1]))`` (a stream apart
from :class:`softlabels.engine.samplers.Sampler`'s ``[seed, e]``).

With ``buffer`` at least the number of chunks, the order is one permutation of all rows
(a fully random order, though not the one the instance sampler draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softlabels.errors import UsageError

__all__ = ["ChunkSampler"]

_STREAM = 1  # the generator stream of the chunk sampler (the instance sampler's has none)


@dataclass
class ChunkSampler:
    num_rows: int
    chunk_rows: int
    buffer: int  # chunks resident at once (one window)
    seed: int
    name: str = "instance"

    def __post_init__(self) -> None:
        if self.chunk_rows < 1 or self.buffer < 1:
            raise UsageError(
                f"Expected chunk rows and a shuffle buffer of at least 1 chunk, got "
                f"{self.chunk_rows} rows and {self.buffer} chunk(s)"
            )

    def __len__(self) -> int:
        return int(self.num_rows)

    @property
    def num_chunks(self) -> int:
        return -(-int(self.num_rows) // self.chunk_rows)

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64([self.seed, epoch, _STREAM]))

    def chunk_order(self, epoch: int) -> np.ndarray:
        """The chunks in the order epoch ``epoch`` reads them (windows of ``buffer``)."""
        return self._rng(epoch).permutation(self.num_chunks)

    def window_of_chunk(self, epoch: int) -> np.ndarray:
        """int64 [num_chunks]: the window (0, 1, ...) each chunk belongs to in ``epoch``."""
        out = np.empty(self.num_chunks, np.int64)
        out[self.chunk_order(epoch)] = np.arange(self.num_chunks) // self.buffer
        return out

    def epoch(self, epoch: int) -> np.ndarray:
        """The N row indices of epoch ``epoch``, in the order they are visited."""
        rng = self._rng(epoch)
        order = rng.permutation(self.num_chunks)  # the draw chunk_order repeats
        parts = []
        for w in range(0, len(order), self.buffer):
            rows = np.concatenate([self._rows(int(c)) for c in order[w : w + self.buffer]])
            parts.append(rows[rng.permutation(len(rows))])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _rows(self, chunk: int) -> np.ndarray:
        start = chunk * self.chunk_rows
        return np.arange(start, min(int(self.num_rows), start + self.chunk_rows), dtype=np.int64)
