"""``softlabels report``: many distill runs, one table of mean ± sd over runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from softlabels.cli._render import err, errors_to_exit, out, print_json

if TYPE_CHECKING:
    from softlabels.reports import Report, Row

__all__ = ["register"]

_SHORT = {"medium": "med", "middle": "mid"}  # the narrow table's group headers
_NAME_MIN = 8  # the narrow table's name column gives way down to this width


def report(
    run_dirs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_DIR", help="Run folders of `softlabels distill` (with summary.json)."
        ),
    ],
    by: Annotated[
        str, typer.Option(metavar="student|method", help="One row per student name or method.")
    ] = "student",
    json_: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print the rows as CSV.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
    plots: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="Write per_class.png and groups.png into DIR."),
    ] = None,
    wide: Annotated[
        bool,
        typer.Option("--wide", help="Method and teacher columns, 2 decimals (past 80 columns)."),
    ] = False,
) -> None:
    """Compare runs: mean ± sd over runs (sd with ddof=1) of top-1, the shot groups and ECE.

    A student that diverged in a run (or a teacher whose model was not at hand) is counted in the ok column and left out of the means.
    """
    with errors_to_exit():
        from softlabels.errors import UsageError
        from softlabels.reports import plot_report
        from softlabels.reports import report as make_report

        chosen = [
            flag
            for flag, on in (("--json", json_), ("--csv", csv_), ("--markdown", markdown))
            if on
        ]
        if len(chosen) > 1:
            raise UsageError(
                f"Expected at most one of --json, --csv, --markdown, got {' and '.join(chosen)}"
            )
        result = make_report(run_dirs, by=by)
        files = plot_report(result, plots) if plots is not None else []
    if json_:
        print_json([row.to_dict() for row in result.rows])
    elif csv_:
        sys.stdout.write(result.to_csv())
    elif markdown:
        sys.stdout.write(result.to_markdown())
    else:
        render_report(result, wide=wide)
    console = err if chosen else out  # JSON, CSV and Markdown keep stdout to themselves
    for path in files:
        console.print(f"wrote {path}", soft_wrap=True)


def render_report(result: Report, *, wide: bool = False) -> None:
    """The Rich table: narrow (fits the console, 80 columns when piped) unless ``wide``."""
    digits, sep = (2, " ± ") if wide else (1, "±")
    groups = result.groups if wide else tuple(_SHORT.get(g, g) for g in result.groups)
    heads = ["row", "method", "teacher", "ok"] if wide else ["row", "ok"]
    heads += ["top-1", *groups, "ECE"]
    cells = [
        _lead(row, wide) + [row.metrics[k].format(digits, sep) for k in result.metric_keys]
        for row in result.rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(heads)]
    notes = [_excluded(row) for row in result.rows if row.excluded]
    notes.append("mean±sd in % over the ok runs (sd ddof=1)" + ("" if wide else "; --wide: more"))
    console = Console(width=max(_width(widths), out.width), highlight=False) if wide else out
    if not wide and _width([_NAME_MIN, *widths[1:]]) > out.width:  # a narrow terminal
        heads, widths, cells = heads[:-1], widths[:-1], [c[:-1] for c in cells]
        notes.append(f"ECE left out to fit {out.width} columns (see --wide)")
    # The name column gives way (ending in an ellipsis): no line wraps or passes the console.
    room = max(_NAME_MIN, out.width - _width([0, *widths[1:]]))
    t = Table(
        title=f"report: {len(result.runs)} run(s), by {result.by}, "
        f"groups {result.groups_definition}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for i, head in enumerate(heads):
        t.add_column(
            head,
            justify="left" if i < (3 if wide else 1) else "right",
            no_wrap=True,
            overflow="ellipsis",
            min_width=widths[i] if i else None,
            max_width=room if i == 0 and not wide else None,
        )
    for row in cells:
        t.add_row(*row)
    console.print(t)
    for note in notes:
        console.print(note, soft_wrap=True)


def _width(widths: list[int]) -> int:
    """The width of a SIMPLE_HEAD table without edges: three characters between columns."""
    return sum(widths) + 3 * (len(widths) - 1)


def _lead(row: Row, wide: bool) -> list[str]:
    ok = f"{row.ok}/{row.total}"
    if not wide:
        return [row.label, ok]
    return [row.label, ",".join(row.methods) or "-", ",".join(row.teachers) or "-", ok]


def _excluded(row: Row) -> str:
    statuses = ", ".join(dict.fromkeys(s for _, _, s in row.excluded))
    return f"{row.label}: {len(row.excluded)}/{row.total} left out ({statuses})"


def register(app: typer.Typer) -> None:
    app.command()(report)
