"""``softlabels.report``: mean ± sd over runs, grouping, diverged students, refused input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from softlabels_reporting_helpers import (
    STUDENTS,
    THIRDS,
    edited_copy,
    entry,
    one_error_line,
    summaries,
)

import softlabels
from softlabels.errors import UsageError
from softlabels.reports import RunSummary, aggregate


def test_means_and_sds_are_those_of_the_summaries(runs: list[Path]) -> None:
    rep = softlabels.report(runs)
    assert rep.groups_definition == "thirds" and rep.metric_keys == THIRDS
    rows = {r.label: r for r in rep.rows}
    assert list(rows) == ["teacher bsce", "teacher rnd", *STUDENTS]  # teachers first
    data = summaries(runs)
    sds = []
    for kind, name in [("teachers", "bsce"), *(("students", s) for s in STUDENTS)]:
        row = rows[f"teacher {name}" if kind == "teachers" else name]
        assert (row.runs, row.total, row.ok, row.excluded) == (2, 2, 2, ())
        for k in THIRDS:
            vals = np.array([entry(d, kind, name)[k] for d in data], dtype=np.float64)
            stat = row.metrics[k]
            assert stat.n == 2
            assert stat.mean == pytest.approx(vals.mean(), abs=1e-12)
            assert stat.sd == pytest.approx(vals.std(ddof=1), abs=1e-12)
            sds.append(stat.sd)
    assert max(sds) > 0.01  # the seeds differ, so a wrong ddof shows


def test_by_method_pools_the_students_of_a_method(runs: list[Path]) -> None:
    rep = softlabels.report(runs, by="method")
    rows = {r.label: r for r in rep.rows}
    assert list(rows) == ["teacher bsce", "teacher rnd", "ce", "dive"]
    dive = rows["dive"]
    assert (dive.runs, dive.total, dive.ok) == (2, 4, 4)
    assert dive.students == ("dive-t2", "dive-T3-p0.5-a0.9") and dive.teachers == ("bsce", "rnd")
    for k in THIRDS:
        vals = [entry(d, "students", s)[k] for d in summaries(runs) for s in STUDENTS[1:]]
        assert dive.metrics[k].mean == pytest.approx(np.mean(vals), abs=1e-12)
        assert dive.metrics[k].sd == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
        assert dive.metrics[k].n == 4


def _diverge(data: dict[str, Any]) -> None:
    s = entry(data, "students", "dive-t2")
    s.update(status="diverged", diverged={"epoch": 0, "step": 1}, top1=0.99, ece=0.99)


def test_a_diverged_student_is_counted_not_averaged(runs: list[Path], tmp_path: Path, cli) -> None:
    broken = edited_copy(runs[1], tmp_path / "seed1-diverged", _diverge)
    rep = softlabels.report([*runs, broken])
    rows = {r.label: r for r in rep.rows}
    row = rows["dive-t2"]
    assert (row.runs, row.total, row.ok) == (3, 3, 2)
    assert row.excluded == ((str(broken), "dive-t2", "diverged"),)
    clean = {r.label: r for r in softlabels.report(runs).rows}["dive-t2"]
    assert row.metrics == clean.metrics  # the diverged run's numbers are not in the mean
    assert rows["ce"].metrics["top1"].n == 3
    # A teacher without its model is counted the same way.
    rnd = rows["teacher rnd"]
    assert (rnd.ok, rnd.total) == (0, 3) and rnd.metrics["top1"].mean is None
    assert {s for _, _, s in rnd.excluded} == {"model not available"}

    result = cli("report", *runs, broken)
    assert result.exit_code == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("dive-t2 "))
    assert " 2/3 " in line
    assert "dive-t2: 1/3 left out (diverged)" in result.stdout


def test_one_run_has_no_sd(runs: list[Path], cli) -> None:
    rep = softlabels.report(runs[:1])
    stat = rep.rows[-1].metrics["top1"]
    assert stat.n == 1 and stat.sd is None and stat.mean is not None
    assert stat.format() == f"{100 * stat.mean:.2f}"
    result = cli("report", runs[0], "--json")
    assert all(r[k]["sd"] is None for r in json.loads(result.stdout) for k in THIRDS)


def test_runs_in_memory_match_runs_on_disk(runs: list[Path]) -> None:
    in_memory = [RunSummary.from_dict(d, source=f"run {i}") for i, d in enumerate(summaries(runs))]
    assert [r.metrics for r in aggregate(in_memory).rows] == [
        r.metrics for r in softlabels.report(runs).rows
    ]


def _absolute(data: dict[str, Any]) -> None:
    data["groups_definition"] = "absolute"
    for e in data["students"]:
        e.update(many=e.pop("head"), medium=e.pop("middle"), few=e.pop("tail"))


def test_mixed_group_definitions_are_refused(runs: list[Path], tmp_path: Path, cli) -> None:
    other = edited_copy(runs[1], tmp_path / "absolute", _absolute)
    assert softlabels.report([other]).groups == ("many", "medium", "few")
    with pytest.raises(UsageError, match="one group definition"):
        softlabels.report([runs[0], other])
    line = one_error_line(cli("report", runs[0], other))
    assert "thirds in" in line and "absolute in" in line and str(other) in line


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "no such file"),
        ("no folder", "no such folder"),
        ("not json", "Expected JSON in"),
        ("not an object", "Expected a JSON object"),
        ("students not a list", "Expected students a list"),
        ("metric not a number", "Expected students[0].top1 a number or null"),
        ("no name", "Expected students[1].name a non-empty string"),
        ("no definition", "Expected groups_definition"),
    ],
)
def test_a_malformed_summary_is_one_line_naming_it(
    runs: list[Path], tmp_path: Path, cli, case: str, needle: str
) -> None:
    run = tmp_path / "bad"
    summary = run / "summary.json"
    if case != "no folder":
        edited_copy(runs[0], run, lambda d: None)
    text = {
        "missing": None,
        "not json": '{"students": [',
        "not an object": "[1, 2]",
        "students not a list": '{"groups_definition": "thirds", "students": {}}',
        "metric not a number": '{"groups_definition": "thirds", "students": '
        '[{"name": "a", "method": "ce", "status": "ok", "top1": "high"}]}',
        "no name": '{"groups_definition": "thirds", "students": '
        '[{"name": "a", "method": "ce", "status": "ok"}, {"method": "ce", "status": "ok"}]}',
        "no definition": '{"students": []}',
    }.get(case)
    if case == "missing":
        summary.unlink()
    elif text is not None:
        summary.write_text(text)
    line = one_error_line(cli("report", runs[0], run))
    assert needle in line
    assert str(summary if case != "no folder" else run) in line


def test_bad_arguments_are_one_line(runs: list[Path], cli) -> None:
    assert "--by student or method" in one_error_line(cli("report", *runs, "--by", "teacher"))
    assert "twice" in one_error_line(cli("report", runs[0], runs[1], runs[0]))
    line = one_error_line(cli("report", *runs, "--json", "--csv"))
    assert "at most one of" in line
