"""The benchmark scripts' mean ± sd tables come from the report library, unchanged in content.

Each expected line is computed here as the scripts did before (``statistics`` over the
seeds' values, in %), on the two tiny runs.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from softlabels_reporting_helpers import STUDENTS, THIRDS, entry, summaries

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def scripts() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _table
        import distill_mnist1d
        import dive_ablation
        import teachers_mnist1d
    finally:
        sys.path.remove(str(BENCHMARKS))
    return _table, distill_mnist1d, dive_ablation, teachers_mnist1d


def _cells(entries: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    """The former ``mean_sd_cells``: mean ± stdev in % with 2 decimals."""
    out = []
    for k in keys:
        vals = [100 * e[k] for e in entries]
        out.append(f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}")
    return " | ".join(out)


def test_distill_table(runs: list[Path], scripts: Any) -> None:
    _table, distill_mnist1d, _, _ = scripts
    data = summaries(runs)
    seed_runs = [
        _table.seed_run(
            seed,
            d["groups_definition"],
            d["students"],
            {"bsce": {k: entry(d, "teachers", "bsce")[k] for k in THIRDS}},
        )
        for seed, d in enumerate(data)
    ]
    lines = distill_mnist1d.table(seed_runs)
    teacher = [entry(d, "teachers", "bsce") for d in data]
    assert lines == [
        "| run | " + " | ".join(THIRDS) + " |",
        "|---" * 6 + "|",
        f"| teacher bsce | {_cells(teacher, THIRDS)} |",
        *(f"| {s} | {_cells([entry(d, 'students', s) for d in data], THIRDS)} |" for s in STUDENTS),
    ]


def test_dive_ablation_table(runs: list[Path], scripts: Any) -> None:
    _, _, dive_ablation, _ = scripts
    lines = dive_ablation.table({"4 cached views": runs, "clean": runs[::-1]})
    data = summaries(runs)
    assert lines[:2] == ["| cache | student | " + " | ".join(THIRDS) + " |", "|---" * 7 + "|"]
    for label in ("4 cached views", "clean"):
        for s in STUDENTS:
            expected = (
                f"| {label} | {s} | {_cells([entry(d, 'students', s) for d in data], THIRDS)} |"
            )
            assert expected in lines
        # The run's teachers come along; one without its model is said to be left out.
        assert f"| {label} | teacher rnd | " + " | ".join(["-"] * 5) + " |" in lines
        assert f"{label} teacher rnd: mean over 0/2 seeds (others not ok)" in lines


def test_teachers_table(scripts: Any) -> None:
    _, _, _, teachers_mnist1d = scripts
    keys = ("top1", "many", "medium", "few", "ece")
    runs = [
        {"loss": loss, "seed": seed, "seconds": 1.0 + seed, **{k: 0.1 * (i + seed) + 0.05 * j
                                                               for j, k in enumerate(keys)}}
        for i, loss in enumerate(("ce", "bsce"))
        for seed in (0, 1, 2)
    ]  # fmt: skip
    lines = teachers_mnist1d.table(runs)
    assert lines[:2] == ["| loss | " + " | ".join(keys) + " | s/run |", "|---" * 7 + "|"]
    for loss, line in zip(("ce", "bsce"), lines[2:], strict=True):
        rs = [r for r in runs if r["loss"] == loss]
        assert line == f"| {loss} | {_cells(rs, keys)} | 2.0 |"
