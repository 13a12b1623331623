"""The one check and message for NaN/Inf rows: which samples, how many, what to do."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from softlabels.errors import NonFiniteError

__all__ = ["nonfinite_error", "nonfinite_rows"]


def nonfinite_rows(values: np.ndarray) -> np.ndarray:
    """Indices of the rows (first axis) holding any NaN or +/-Inf. float16 is checked on its
    bits (exponent all ones): the same answer as ``np.isfinite`` at a fraction of the cost."""
    flat = values.reshape(values.shape[0], -1)
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
