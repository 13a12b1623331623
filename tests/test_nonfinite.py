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
