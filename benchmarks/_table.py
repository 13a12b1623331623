"""Shared by the real-data benchmark scripts: mean ± sd cells of a Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def mean_sd_cells(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[str]:
    """``"mean ± sd"`` (in %, over ``rows``) for each key; sd is 0 for a single row."""
    cells = []
    for k in keys:
        vals = [100 * r[k] for r in rows]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f}")
    return cells
