"""Outputs of a distill run: Parquet tables, summary JSON and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from softlabels.stores.atomic import atomic_file, write_atomic

__all__ = ["plot_groups", "plot_per_class", "write_json", "write_parquet"]


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Students log different columns (SSD adds its hard head's): use the union of all keys.
    keys = list(dict.fromkeys(k for r in rows for k in r))
    table = (
        pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in rows]) if rows else pa.table({})
    )
    with atomic_file(path) as f:
        pq.write_table(table, f)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=False, default=float) + "\n").encode())


def plot_per_class(
    path: Path, counts: np.ndarray, per_class: dict[str, list[float | None]]
) -> Path:
    """Per-class accuracy against training count, classes sorted head to tail."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(-np.asarray(counts), kind="stable")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    xs = np.arange(len(order))
    for name, acc in per_class.items():
        ys = [np.nan if acc[i] is None else 100 * acc[i] for i in order]
        ax.plot(xs, ys, marker="o", ms=3, lw=1.2, label=name)
    ax.set_xlabel("class (sorted by training count, head → tail)")
    ax.set_ylabel("test accuracy (%)")
    ax2 = ax.twinx()
    ax2.bar(xs, np.asarray(counts)[order], color="grey", alpha=0.15, width=0.9)
    ax2.set_yscale("log")
    ax2.set_ylabel("training count (bars, log)")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(fontsize=8, ncol=2, loc="lower left")
    ax.set_title("per-class accuracy against training count")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_groups(
    path: Path, groups: dict[str, dict[str, float | None]], names: tuple[str, ...]
) -> Path:
    """Grouped bars: one group of bars per shot group, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(groups)
    width = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    xs = np.arange(len(names))
    for i, run in enumerate(runs):
        vals = [np.nan if groups[run].get(g) is None else 100 * groups[run][g] for g in names]
        ax.bar(xs + (i - (len(runs) - 1) / 2) * width, vals, width, label=run)
    ax.set_xticks(xs, names)
    ax.set_ylabel("mean per-class accuracy (%)")
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("accuracy by shot group")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
