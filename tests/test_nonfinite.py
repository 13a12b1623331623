"""The one NaN/Inf row check and message (softlabels.nonfinite) and its users' wording."""

from __future__ import annotations

import numpy as np
import pytest

from softlabels.calibration._run import _check_finite
from softlabels.errors import NonFiniteError
from softlabels.nonfinite import nonfinite_error, nonfinite_rows


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_rows_match_isfinite_for_every_special_value(dtype: type) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3, 5)).astype(dtype)
    x[3, 1, 2], x[9, 0, 0], x[17, 2, 4] = np.nan, np.inf, -np.inf
    x[21] = np.finfo(dtype).max  # the largest finite value is finite
    x[22, 0, 0] = np.finfo(dtype).tiny / 2  # a subnormal too
    want = np.flatnonzero(~np.isfinite(x.reshape(40, -1)).all(axis=1))
    assert nonfinite_rows(x).tolist() == want.tolist() == [3, 9, 17]


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("block_rows", [1, 4, 7, 40, 1000])
def test_blocks_give_the_rows_of_one_pass(dtype: type, block_rows: int) -> None:
    """Bad rows at block edges, in the last short block, and none: the answer of one pass."""
    x = np.ones((41, 2, 3), dtype)
    for r in (0, 3, 4, 6, 7, 27, 40):
        x[r, r % 2, r % 3] = np.nan if r % 2 else np.inf
    block = block_rows * 6 * np.dtype(dtype).itemsize
    assert nonfinite_rows(x, block).tolist() == [0, 3, 4, 6, 7, 27, 40]
    assert nonfinite_rows(np.ones((9, 4), dtype), block).tolist() == []
    assert nonfinite_rows(np.ones((0, 4), dtype), block).tolist() == []


def test_the_check_needs_memory_of_a_block_not_of_the_array() -> None:
    """A whole cache's targets are checked at once: the check's temporaries (the float16
    exponent bits, a mask) stay about one block, not two to three times the array."""
    import tracemalloc

    x = np.ones((4096, 4096), np.float16)  # 32 MiB
    x[4000, 17] = np.inf
    tracemalloc.start()
    try:
        assert nonfinite_rows(x, 1 << 20).tolist() == [4000]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak  # one pass over the whole array: ~48 MiB


def test_message_names_samples_and_counts_the_rest() -> None:
    err = nonfinite_error(
        "t has NaN", np.arange(12), "fix it", names=lambda r: [f"s{i}" for i in r]
    )
    assert (
        str(err)
        == "t has NaN for 12 sample(s): s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 2 more; fix it"
    )


def test_calibrate_refuses_nan_rows_before_writing() -> None:
    z = np.zeros((5, 2, 3), dtype=np.float32)
    z[4, 1, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"'t' has NaN/Inf logits for 1 sample\(s\): row 4; "
                       r"they overflow float16; nothing was written"):  # fmt: skip
        _check_finite(z, "t", np.dtype(np.float16))
    _check_finite(z[:4], "t", np.dtype(np.float16))  # finite rows pass
