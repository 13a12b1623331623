"""The report's two figures (PNG): per-class accuracy and group accuracy, mean ± sd over runs.

1. ``per_class.png``: per-class test accuracy of each student row against the class, classes
   sorted by training count (head to tail), error bars one sd over runs; the training counts
   as grey bars. Teachers have no per-class table in a run folder, so they are not drawn.
2. ``groups.png``: one group of bars per shot group, one bar per row (teachers included),
   error bars one sd over runs.

Figures are built with :class:`matplotlib.figure.Figure` (the Agg canvas, no pyplot state)
and written to a temporary name in the same folder, then renamed into place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from softlabels.errors import UsageError
from softlabels.reports._aggregate import Stat

if TYPE_CHECKING:
    from softlabels.reports._aggregate import Report

__all__ = ["PLOT_FILES", "ClassAccuracy", "class_accuracy", "plot_report"]

PLOT_FILES = ("per_class.png", "groups.png")
_COLUMNS = ("student", "class_id", "train_count", "accuracy")


@dataclass(frozen=True)
class ClassAccuracy:
    """Per-class accuracy of each student row over runs, classes sorted head to tail."""

    class_ids: np.ndarray  # [C], by training count, descending (ties by class id)
    train_counts: np.ndarray  # [C], same order
    rows: dict[str, list[Stat]]  # row label -> one Stat per class, same order


def class_accuracy(report: Report) -> ClassAccuracy:
    """Read ``per_class.parquet`` of each run folder that has ``ok`` students; the runs must
    share their classes (the same training count for each class id)."""
    values: dict[str, dict[int, list[float]]] = {}
    counts: dict[int, int] | None = None
    first = ""
    for run in report.runs:
        students = {
            e.name: (e.method if report.by == "method" else e.name)
            for e in run.entries
            if e.kind == "student" and e.ok
        }
        if run.path is None or not students:
            continue
        table = _read_per_class(run.path / "per_class.parquet")
        run_counts = {
            int(c): int(n) for c, n in zip(table["class_id"], table["train_count"], strict=True)
        }
        if counts is None:
            counts, first = run_counts, run.name
        elif run_counts != counts:
            raise UsageError(
                f"Expected runs on the same classes (training count per class), got different "
                f"counts in {first} and {run.name}"
            )
        for student, c, acc in zip(
            table["student"], table["class_id"], table["accuracy"], strict=True
        ):
            if student in students and acc is not None:
                values.setdefault(str(students[student]), {}).setdefault(int(c), []).append(acc)
    counts = counts or {}
    ids = np.array(sorted(counts, key=lambda c: (-counts[c], c)), dtype=np.int64)
    labels = [row.label for row in report.rows if row.kind == "student" and row.label in values]
    return ClassAccuracy(
        class_ids=ids,
        train_counts=np.array([counts[c] for c in ids], dtype=np.int64),
        rows={lb: [Stat.of(values[lb].get(int(c), [])) for c in ids] for lb in labels},
    )


def plot_report(report: Report, out_dir: str | os.PathLike[str]) -> list[str]:
    """Write ``per_class.png`` and ``groups.png`` into ``out_dir`` (created); return the paths."""
    per_class = class_accuracy(report)
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(os.fspath(out_dir), name) for name in PLOT_FILES]
    _save(_per_class_figure(per_class, len(report.runs)), paths[0])
    _save(_groups_figure(report), paths[1])
    return paths


def _read_per_class(path: Path) -> dict[str, list[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise UsageError(
            f"Expected {path} (written by softlabels distill), got no such file"
        ) from None
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(
            f"Expected a Parquet table in {path}, got {type(exc).__name__}: {exc}"
        ) from None
    missing = [c for c in _COLUMNS if c not in table.column_names]
    if missing:
        raise UsageError(
            f"Expected columns {', '.join(_COLUMNS)} in {path}, got no {', '.join(missing)}"
        )
    return {c: table.column(c).to_pylist() for c in _COLUMNS}


def _figure() -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 4.5), dpi=100, layout="constrained")


def _save(fig: Any, path: str) -> None:
    """Temp file then rename: a crash never leaves half a PNG under the final name."""
    from softlabels.stores.atomic import atomic_file

    with atomic_file(path) as f:
        fig.savefig(f, format="png")


def _pct(stats: list[Stat]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([np.nan if s.mean is None else 100 * s.mean for s in stats])
    sd = np.array([0.0 if s.sd is None else 100 * s.sd for s in stats])
    return mean, sd


def _per_class_figure(data: ClassAccuracy, runs: int) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    xs = np.arange(len(data.class_ids))
    ax2 = ax.twinx()
    ax2.bar(xs, data.train_counts, color="grey", alpha=0.15, width=0.9)
    ax2.set_yscale("log")
    ax2.set_ylabel("training count (bars, log)")
    for label, stats in data.rows.items():
        mean, sd = _pct(stats)
        ax.errorbar(xs, mean, yerr=sd, marker="o", ms=3, lw=1.2, capsize=2, label=label)
    ax.set_xlabel("class (sorted by training count, head → tail)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    if data.rows:
        ax.legend(fontsize=8, ncol=2, loc="lower left")
    ax.set_title(f"per-class accuracy, mean ± sd over {runs} run(s)")
    return fig


def _groups_figure(report: Report) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    names = report.groups
    rows = report.rows
    width = 0.8 / max(1, len(rows))
    xs = np.arange(len(names))
    for i, row in enumerate(rows):
        mean, sd = _pct([row.metrics[g] for g in names])
        offset = (i - (len(rows) - 1) / 2) * width
        ax.bar(xs + offset, mean, width, yerr=sd, capsize=2, label=row.label)
    ax.set_xticks(xs, names)
    ax.set_ylabel("mean per-class accuracy (%)")
    if rows:
        ax.legend(fontsize=8, ncol=2)
    ax.set_title(f"accuracy by shot group, mean ± sd over {len(report.runs)} run(s)")
    return fig
