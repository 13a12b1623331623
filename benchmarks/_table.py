"""Shared by the real-data benchmark scripts: mean ± sd cells of a Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def mean_sd_cells(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[str]:
    """``"mean ± sd"`` (in %, over ``rows``) for each key; sd is 0 for a single row.

    Rows where a key is missing or None (an empty shot group) are left out of that cell;
    a key with no value at all gives ``"-"``.
    """
    cells = []
    for k in keys:
        vals = [100 * r[k] for r in rows if r.get(k) is not None]
        if not vals:
            cells.append("-")
            continue
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f}")
    return cells
