"""The chunk-shuffled sampler: every row once per epoch, one window of chunks at a time,
a function of (seed, epoch) only."""

from __future__ import annotations

import numpy as np
import pytest

from softlabels.engine.chunk_sampler import ChunkSampler
from softlabels.errors import UsageError


@pytest.mark.parametrize(
    ("n", "rows", "buffer"), [(159, 16, 3), (160, 16, 4), (5, 16, 2), (97, 7, 1), (40, 8, 99)]
)
def test_every_row_exactly_once_per_epoch(n: int, rows: int, buffer: int) -> None:
    s = ChunkSampler(n, rows, buffer, seed=3)
    assert len(s) == n
    for epoch in range(4):
        order = s.epoch(epoch)
        assert order.dtype == np.int64 and len(order) == n
        assert np.array_equal(np.sort(order), np.arange(n))


def test_each_window_holds_the_rows_of_its_buffer_chunks_only() -> None:
    s = ChunkSampler(159, 16, 3, seed=0)
    for epoch in range(3):
        order, chunks = s.epoch(epoch), s.chunk_order(epoch)
        window = s.window_of_chunk(epoch)[order // 16]
        assert np.all(np.diff(window) >= 0)  # windows one after the other
        for w in range(-(-len(chunks) // 3)):
            got = set((order[window == w] // 16).tolist())
            assert got == set(chunks[3 * w : 3 * w + 3].tolist())


def test_rows_are_shuffled_across_the_chunks_of_a_window() -> None:
    order = ChunkSampler(160, 16, 10, seed=0).epoch(0)  # one window: all chunks
    assert len(set((order[:16] // 16).tolist())) > 3


def test_the_order_is_a_function_of_seed_and_epoch() -> None:
    a, b = ChunkSampler(159, 16, 3, seed=5), ChunkSampler(159, 16, 3, seed=5)
    assert all(np.array_equal(a.epoch(e), b.epoch(e)) for e in range(3))
    assert not np.array_equal(a.epoch(0), a.epoch(1))
    assert not np.array_equal(a.epoch(0), ChunkSampler(159, 16, 3, seed=6).epoch(0))
    assert np.array_equal(a.epoch(2), ChunkSampler(159, 16, 3, seed=5).epoch(2))  # resumed


def test_bad_buffer_is_one_usage_error() -> None:
    with pytest.raises(UsageError, match="Expected chunk rows and a shuffle buffer"):
        ChunkSampler(10, 4, 0, seed=0)
