"""Many runs, one table: mean ± sd over runs of each student (or method) and teacher."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from softlabels.errors import UsageError
from softlabels.reports._runs import Entry, RunSummary, group_names, load_run

__all__ = ["BY", "Report", "Row", "Stat", "aggregate", "report"]

BY = ("student", "method")


@dataclass(frozen=True)
class Stat:
    """Mean and sample sd (ddof=1) of one metric over ``n`` values; ``sd`` is ``None`` for
    fewer than two values, ``mean`` for none. Values are fractions, as in summary.json."""

    mean: float | None
    sd: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        x = np.asarray(values, dtype=np.float64)
        mean = float(x.mean()) if len(x) else None
        sd = float(x.std(ddof=1)) if len(x) > 1 else None
        return cls(mean=mean, sd=sd, n=len(x))

    def format(self, digits: int = 2, sep: str = " ± ", scale: float = 100.0) -> str:
        """``"85.23 ± 1.02"`` (in % by default); the mean alone for one value, ``-`` for none."""
        if self.mean is None:
            return "-"
        text = f"{scale * self.mean:.{digits}f}"
        return text if self.sd is None else f"{text}{sep}{scale * self.sd:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n}


@dataclass(frozen=True)
class Row:
    """One line of the report: a student name (or method), or a teacher, over every run.

    ``total`` entries (one per run and student) were found in ``runs`` runs; the ``ok``
    ones make the statistics, the others (diverged students, teachers whose model was not
    at hand) are listed in ``excluded`` as ``(run, name, status)``.
    """

    kind: str  # "student" or "teacher"
    name: str  # the student name, the method (by="method") or the teacher name
    metrics: dict[str, Stat]  # top1, the three groups, ece
    runs: int
    total: int
    ok: int
    students: tuple[str, ...]  # the student names pooled (empty for a teacher)
    methods: tuple[str, ...]
    teachers: tuple[str, ...]  # the students' teachers
    excluded: tuple[tuple[str, str, str], ...]

    @property
    def label(self) -> str:
        return f"teacher {self.name}" if self.kind == "teacher" else self.name

    def to_dict(self) -> dict[str, Any]:
        """The row as ``--json`` prints it (see the README for the keys)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "label": self.label,
            "students": list(self.students),
            "methods": list(self.methods),
            "teachers": list(self.teachers),
            "runs": self.runs,
            "total": self.total,
            "ok": self.ok,
            "excluded": [{"run": r, "name": n, "status": s} for r, n, s in self.excluded],
            **{k: stat.to_dict() for k, stat in self.metrics.items()},
        }


@dataclass(frozen=True)
class Report:
    """The rows (teachers first, then students or methods, in order of first appearance)."""

    by: str
    groups_definition: str
    rows: tuple[Row, ...]
    runs: tuple[RunSummary, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        return group_names(self.groups_definition)

    @property
    def metric_keys(self) -> tuple[str, ...]:
        return ("top1", *self.groups, "ece")

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "groups_definition": self.groups_definition,
            "runs": [r.name for r in self.runs],
            "rows": [row.to_dict() for row in self.rows],
        }

    def to_csv(self) -> str:
        from softlabels.reports._formats import report_csv

        return report_csv(self)

    def to_markdown(self) -> str:
        from softlabels.reports._formats import report_markdown

        return report_markdown(self)


def report(run_dirs: Iterable[str | Path], by: str = "student") -> Report:
    """Read the ``summary.json`` of each ``softlabels distill`` run folder and aggregate.

    >>> rep = softlabels.report(["runs/seed0", "runs/seed1"], by="method")  # doctest: +SKIP
    >>> rep.rows[0].metrics["top1"].mean, rep.rows[0].metrics["top1"].sd
    """
    dirs = [Path(d) for d in run_dirs]
    seen: dict[Path, Path] = {}
    for d in dirs:
        key = d.resolve()
        if key in seen:
            raise UsageError(f"Expected each run folder once, got {d} twice (as {seen[key]})")
        seen[key] = d
    return aggregate([load_run(d) for d in dirs], by=by)


def aggregate(runs: Sequence[RunSummary], by: str = "student") -> Report:
    """The report of runs already read (``RunSummary.from_dict`` builds one from a dict)."""
    if by not in BY:
        raise UsageError(f"Expected --by {' or '.join(BY)}, got {by!r}")
    if not runs:
        raise UsageError("Expected at least one run, got none")
    definitions: dict[str, list[str]] = {}
    for r in runs:
        definitions.setdefault(r.groups_definition, []).append(r.source)
    if len(definitions) > 1:
        found = "; ".join(f"{d} in {', '.join(srcs)}" for d, srcs in definitions.items())
        raise UsageError(
            f"Expected runs with one group definition (absolute or thirds), got {found}"
        )
    (definition,) = definitions
    keys = ("top1", *group_names(definition), "ece")
    pools: dict[tuple[str, str], list[tuple[RunSummary, Entry]]] = {}
    for kind in ("teacher", "student"):  # teachers first, as distill shows them
        for run in runs:
            for e in run.entries:
                if e.kind == kind:
                    name = e.method if kind == "student" and by == "method" else e.name
                    pools.setdefault((kind, str(name)), []).append((run, e))
    rows = tuple(_row(kind, name, pool, keys) for (kind, name), pool in pools.items())
    return Report(by=by, groups_definition=definition, rows=rows, runs=tuple(runs))


def _row(kind: str, name: str, pool: list[tuple[RunSummary, Entry]], keys: tuple[str, ...]) -> Row:
    ok = [e for _, e in pool if e.ok]
    stats = {k: Stat.of([v for e in ok if (v := e.metrics.get(k)) is not None]) for k in keys}
    return Row(
        kind=kind,
        name=name,
        metrics=stats,
        runs=len({id(run) for run, _ in pool}),
        total=len(pool),
        ok=len(ok),
        students=_distinct(e.name for _, e in pool) if kind == "student" else (),
        methods=_distinct(e.method for _, e in pool),
        teachers=_distinct(e.teacher for _, e in pool),
        excluded=tuple((run.name, e.name, e.status) for run, e in pool if not e.ok),
    )


def _distinct(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
