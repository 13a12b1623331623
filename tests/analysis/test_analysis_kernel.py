"""The pass's kernels against an independent NumPy computation: the dense one (shared max,
one exponential per chain of doubled scales, squares along it, weighted column sums) and
the closed form of a sparse chunk (against NumPy and against the rule's dense view)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.analysis.virtual import (
    DEFAULT_POWERS,
    DEFAULT_TAUS,
    _chains,
    _grid,
    _reduce_rows,
)

CPU = torch.device("cpu")


def numpy_sums(z: np.ndarray, scales: list[float]) -> np.ndarray:
    """sum over rows of softmax(z * s), float64, written out with no shared work."""
    out = []
    for s in scales:
        y = z.astype(np.float64) * s
        e = np.exp(y - y.max(-1, keepdims=True))
        out.append((e / e.sum(-1, keepdims=True)).sum(0))
    return np.stack(out)


# Effective temperatures: a few free ones plus doubles of them, so chains of 1 to 4 appear.
tau_effs = st.lists(st.floats(0.3, 20.0), min_size=1, max_size=4).flatmap(
    lambda base: st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=4).map(
        lambda mult: sorted({round(b * m, 9) for b in base for m in mult})
    )
)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.integers(1, 40),
    c=st.integers(2, 60),
    spread=st.sampled_from([0.1, 3.0, 30.0]),
    offset=st.floats(-500, 500),
    taus=tau_effs,
    block=st.integers(1, 64),
    half=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_kernel_matches_numpy(
    rows: int,
    c: int,
    spread: float,
    offset: float,
    taus: list[float],
    block: int,
    half: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(rows, c)) * spread + offset).astype(np.float16 if half else np.float32)
    scales = [1.0 / t for t in taus]
    got = _reduce_rows(z, 0, rows, scales, block, CPU).numpy()
    want = numpy_sums(z, scales)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * rows)
    np.testing.assert_allclose(got.sum(-1), rows, rtol=2e-5)  # one example per row


def test_dense_kernel_row_range_and_neg_inf() -> None:
    """Only rows[lo:hi] count; -inf logits get no mass at any temperature."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(30, 9)).astype(np.float32) * 4
    z[5, 3] = z[7, :4] = -np.inf
    scales = [1.0, 0.5, 0.25, 1 / 3]
    got = _reduce_rows(z, 4, 21, scales, 5, CPU).numpy()
    np.testing.assert_allclose(got, numpy_sums(z[4:21], scales), rtol=2e-5, atol=1e-6)


def test_default_grid_chains() -> None:
    """29 distinct T/p of the default grid, 10 exponentials: one chain per T/p = 11 ... 20."""
    effs = sorted({te for _t, _p, te in _grid(DEFAULT_TAUS, DEFAULT_POWERS)})
    scales = [1.0 / t for t in effs]
    chains = _chains(scales)
    assert len(effs) == 29 and len(chains) == 10
    assert sorted(i for ch in chains for i in ch) == list(range(29))  # each scale once
    assert sorted(effs[ch[0]] for ch in chains) == [float(t) for t in range(11, 21)]
    for ch in chains:
        for a, b in pairwise(ch):
            assert scales[b] == 2 * scales[a]
    assert _chains([0.3, 0.7]) == [[0], [1]]  # no doubles: one exponential each
