"""The one check and message for NaN/Inf rows: which samples, how many, what to do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from softlabels.errors import NonFiniteError

__all__ = ["nonfinite_error", "nonfinite_rows"]


# The rows checked at a time: the check's temporaries (the exponent bits, a mask) stay
# about this size whatever the array's (a whole cache's targets are checked at once).
BLOCK_BYTES = 32 << 20


def nonfinite_rows(values: np.ndarray, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Indices of the rows (first axis) holding any NaN or +/-Inf. float16 is checked on its
    bits (exponent all ones): the same answer as ``np.isfinite`` at a fraction of the cost.
    Checked ``block_bytes`` of rows at a time, so the memory it needs beyond ``values`` is
    bounded by that, not by the array."""
    if values.shape[0] == 0:
        return np.zeros(0, np.int64)
    flat = values.reshape(values.shape[0], -1)
    step = max(1, block_bytes // max(1, flat.shape[1] * flat.itemsize))
    found = [_nonfinite(flat[i : i + step]) + i for i in range(0, len(flat), step)]
    return np.concatenate(found)


def _nonfinite(flat: np.ndarray) -> np.ndarray:
    if flat.dtype == np.float16:
        exponent = np.bitwise_and(flat.view(np.uint16), np.uint16(0x7C00))
        return np.flatnonzero((exponent == 0x7C00).any(axis=1))
    return np.flatnonzero(~np.isfinite(flat).all(axis=1))


def nonfinite_error(
    subject: str,
    rows: np.ndarray,
    remedy: str,
    *,
    names: Callable[[np.ndarray], Sequence[str]] | None = None,
    shown: int = 10,
) -> NonFiniteError:
    """``"{subject} for N sample(s): id, id ... and K more; {remedy}"``, naming the first
    ``shown`` samples by ``names(rows)`` (sample ids) or by row number."""
    first = rows[:shown]
    ids = list(names(first)) if names is not None else [f"row {int(r)}" for r in first]
    more = f" and {len(rows) - shown} more" if len(rows) > shown else ""
    return NonFiniteError(
        f"{subject} for {len(rows)} sample(s): {', '.join(map(str, ids))}{more}; {remedy}"
    )
