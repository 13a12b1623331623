"""Shared by the real-data benchmark scripts: Markdown tables of mean ± sd over seeds.

The statistics come from the report library (``softlabels.reports``, what
``softlabels report`` prints), so a benchmark table and a report of the same runs agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from softlabels.reports import Report, Row, RunSummary


def seed_run(
    seed: int,
    groups_definition: str,
    students: Iterable[Mapping[str, Any]] = (),
    teachers: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunSummary:
    """One seed's results (a distill result's students, teachers' test metrics by name) as a
    run of the report."""
    return RunSummary.from_dict(
        {
            "groups_definition": groups_definition,
            "teachers": [{"name": k, "status": "ok", **m} for k, m in (teachers or {}).items()],
            "students": list(students),
        },
        source=f"seed {seed}",
    )


def cells(row: Row, keys: Sequence[str]) -> list[str]:
    """``"mean ± sd"`` of each metric of a report row, in % (the mean alone for one seed)."""
    return [row.metrics[k].format() for k in keys]


def markdown_table(
    reports: Sequence[tuple[Sequence[str], Report]],
    lead: Sequence[str] = ("run",),
    *,
    label: str = "label",
) -> list[str]:
    """``| *lead cells | row | mean ± sd ... |`` for every row of each report, then a line per
    row that lost seeds (a diverged student: left out of its mean). ``label="name"`` drops
    the "teacher " prefix of teacher rows."""
    keys = reports[0][1].metric_keys if reports else ("top1", "ece")
    lines = ["| " + " | ".join([*lead, *keys]) + " |", "|---" * (len(lead) + len(keys)) + "|"]
    notes = []
    for lead_cells, rep in reports:
        for row in rep.rows:
            name = getattr(row, label)
            lines.append("| " + " | ".join([*lead_cells, name, *cells(row, keys)]) + " |")
            if row.excluded:
                where = " ".join([*lead_cells, name])
                notes.append(f"{where}: mean over {row.ok}/{row.total} seeds (others not ok)")
    return lines + notes
