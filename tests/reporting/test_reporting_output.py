"""``softlabels report`` output: JSON, CSV, Markdown, the 80-column table and the plots."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from softlabels_reporting_helpers import STUDENTS, THIRDS, edited_copy, one_error_line

import softlabels
from softlabels.reports import class_accuracy

ROW_KEYS = {"kind", "name", "label", "students", "methods", "teachers", "runs", "total", "ok"}


def test_json_is_the_rows_with_documented_keys(runs: list[Path], cli) -> None:
    result = cli("report", *runs, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    rep = softlabels.report(runs)
    assert rows == [r.to_dict() for r in rep.rows]
    for row in rows:
        assert set(row) == ROW_KEYS | {"excluded", *THIRDS}
        assert all(set(row[k]) == {"mean", "sd", "n"} for k in THIRDS)
    assert [r["label"] for r in rows] == ["teacher bsce", "teacher rnd", *STUDENTS]


def test_csv_parses_to_the_same_numbers(runs: list[Path], cli) -> None:
    result = cli("report", *runs, "--csv")
    assert result.exit_code == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    rep = softlabels.report(runs)
    assert [r["label"] for r in table] == [r.label for r in rep.rows]
    for line, row in zip(table, rep.rows, strict=True):
        assert int(line["ok"]) == row.ok and int(line["total"]) == row.total
        for k in THIRDS:
            stat = row.metrics[k]
            assert line[f"{k}_mean"] == ("" if stat.mean is None else repr(stat.mean))
            assert line[f"{k}_sd"] == ("" if stat.sd is None else repr(stat.sd))
            assert int(line[f"{k}_n"]) == stat.n


def test_markdown_is_one_table_in_percent(runs: list[Path], cli) -> None:
    result = cli("report", *runs, "--markdown", "--by", "method")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    cells = [ln.strip("|").split("|") for ln in lines]
    assert all(ln.startswith("| ") or ln.startswith("|---") for ln in lines)
    assert len({len(c) for c in cells}) == 1 and len(cells) == 2 + 4  # header, rule, rows
    assert [c.strip() for c in cells[0]] == [
        "row", "method", "ok", "top-1", "head", "middle", "tail", "ECE",
    ]  # fmt: skip
    dive = softlabels.report(runs, by="method").rows[-1]
    top1 = dive.metrics["top1"]
    assert [c.strip() for c in cells[-1]][:4] == [
        "dive", "dive", "4/4", f"{100 * top1.mean:.2f} ± {100 * top1.sd:.2f}",
    ]  # fmt: skip


def _table(runs: list[Path], *args: str, columns: int) -> str:
    """The real command in a child process (Rich reads the terminal width as a user's would)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    cmd = [sys.executable, "-m", "softlabels", "report", *map(str, runs), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_table_fits_80_columns_without_wrapping_names(runs: list[Path]) -> None:
    text = _table(runs, columns=80)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80, text
    rep = softlabels.report(runs)
    for row in rep.rows:  # each row whole on one line: its name, ok count and numbers
        top1 = row.metrics["top1"].format(1, "±")
        line = [ln for ln in lines if ln.startswith(row.label + " ")]
        assert len(line) == 1, (row.label, text)
        assert f" {row.ok}/{row.total} " in line[0] and top1 in line[0]
        assert line[0].rstrip().endswith(row.metrics["ece"].format(1, "±")), line[0]
    assert "teacher rnd: 2/2 left out (model not available)" in text
    # Narrower still: ECE goes (said so), names end in an ellipsis; still one line per row.
    narrow = _table(runs, columns=60).splitlines()
    assert max(len(ln) for ln in narrow) <= 60, narrow
    rule = next(i for i, ln in enumerate(narrow) if ln.startswith("───"))
    body = narrow[rule + 1 : rule + 1 + len(rep.rows)]
    assert [ln.split()[1] for ln in body] == [f"{r.ok}/{r.total}" for r in rep.rows], narrow
    assert "ECE left out to fit 60 columns (see --wide)" in narrow
    # --wide: every column, two decimals, as wide as it needs.
    wide = _table(runs, "--wide", columns=80)
    assert "method" in wide and "middle" in wide
    assert any(len(ln) > 80 for ln in wide.splitlines())
    dive = next(ln for ln in wide.splitlines() if ln.startswith("dive-t2 "))
    assert "dive" in dive.split()[1:3] and "bsce" in dive.split()
    row = next(r for r in rep.rows if r.label == "dive-t2")
    assert row.metrics["top1"].format() in dive and row.metrics["ece"].format() in dive


def test_plots_are_written_atomically(runs: list[Path], tmp_path: Path, cli) -> None:
    out = tmp_path / "plots"
    result = cli("report", *runs, "--json", "--plots", out)
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)  # the file paths went to stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["groups.png", "per_class.png"]  # no temporary file left behind
    for name in files:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {out / name}" in result.stderr


def test_plots_refuse_runs_on_other_classes(runs: list[Path], tmp_path: Path, cli) -> None:
    other = edited_copy(runs[1], tmp_path / "other", lambda d: None)
    table = pq.read_table(other / "per_class.parquet").to_pylist()
    for row in table:
        row["train_count"] += row["class_id"] == 3
    pq.write_table(pa.Table.from_pylist(table), other / "per_class.parquet")
    line = one_error_line(cli("report", runs[0], other, "--plots", tmp_path / "p"))
    assert "same classes" in line and str(other) in line
    (other / "per_class.parquet").unlink()
    line = one_error_line(cli("report", runs[0], other, "--plots", tmp_path / "p"))
    assert f"Expected {other / 'per_class.parquet'}" in line
    assert cli("report", runs[0], other).exit_code == 0  # the table needs no per-class file


@pytest.mark.parametrize("by", ["student", "method"])
def test_per_class_accuracy_is_mean_and_sd_over_runs(runs: list[Path], by: str) -> None:
    rep = softlabels.report(runs, by=by)
    acc = class_accuracy(rep)
    tables = [pq.read_table(r / "per_class.parquet").to_pylist() for r in runs]
    counts = {t["class_id"]: t["train_count"] for t in tables[0]}
    assert list(acc.train_counts) == sorted(counts.values(), reverse=True)
    assert [counts[c] for c in acc.class_ids] == list(acc.train_counts)
    names = {
        "student": {s: (s,) for s in STUDENTS},
        "method": {"ce": ("ce",), "dive": STUDENTS[1:]},
    }
    assert list(acc.rows) == list(names[by])  # students only: teachers have no per-class table
    for label, members in names[by].items():
        for i, c in enumerate(acc.class_ids):
            vals = [
                t["accuracy"]
                for table in tables
                for t in table
                if t["student"] in members and t["class_id"] == c and t["accuracy"] is not None
            ]
            stat = acc.rows[label][i]
            assert stat.n == len(vals) == 2 * len(members)
            assert stat.mean == pytest.approx(np.mean(vals), abs=1e-12)
            assert stat.sd == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
