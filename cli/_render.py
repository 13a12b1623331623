"""Output helpers of the CLI: one error line, progress bars on stderr, results on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from softlabels.errors import SoftlabelsError

__all__ = [
    "JsonOpt",
    "QuietOpt",
    "err",
    "errors_to_exit",
    "note",
    "out",
    "print_json",
    "progress_bar",
]

# file=None: Rich looks sys.stdout/sys.stderr up at write time (so test runners can swap them).
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# The two output switches every command that prints a result shares (README, "JSON and quiet").
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout (keys: see README).")
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Results only: no progress bar, no notes (errors and warnings stay)."
    ),
]


def note(message: str, *, quiet: bool, console: Console | None = None) -> None:
    """An informational line (what was resumed, stored, written; how to read a table):
    on stderr unless ``console`` says otherwise, and not at all with ``--quiet``."""
    if not quiet:
        (console or err).print(message, soft_wrap=True, markup=False, highlight=False)


def abort(message: str, code: int = 2) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Expected errors become one stderr line and their exit code; bugs keep their traceback."""
    try:
        yield
    except SoftlabelsError as exc:
        raise abort(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise abort(
            "interrupted; committed work is kept, rerun the same command to resume", 130
        ) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr; yields ``update(done, total)``."""
    if not enabled:
        yield lambda done, total, info="": None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    # Started on the first update, so errors raised before any work print no empty bar.
    progress = Progress(*columns, console=err, transient=False)
    task = progress.add_task(description, total=None, info="")
    started = False

    def update(done: int, total: int, info: str = "") -> None:
        nonlocal started
        if not started:
            progress.start()
            started = True
        progress.update(task, completed=done, total=total, info=info)

    try:
        yield update
    finally:
        if started:
            progress.stop()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
