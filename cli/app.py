"""The ``softlabels`` command line: parse, call one library function, render.

Results go to stdout (a Rich table, or ``--json``); progress and errors go to stderr.
Exit codes: 0 success, 1 a check that found problems or a run that failed, 2 bad input.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.22 vendors click
    from typer._click.exceptions import ClickException, UsageError
    from typer.exceptions import Abort, Exit
except ImportError:  # older typer on top of click
    from click.exceptions import Abort, ClickException, Exit, UsageError  # type: ignore[no-redef]

__all__ = ["app", "main"]


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value) print one line and exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except UsageError as exc:
            ctx = exc.ctx
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            sys.stderr.write(f"error: {exc.format_message()}{where}\n")
            sys.exit(2)
        except Exit as exc:
            sys.exit(exc.exit_code)
        except Abort:
            sys.stderr.write("error: aborted\n")
            sys.exit(1)
        except ClickException as exc:
            sys.stderr.write(f"error: {exc.format_message()}\n")
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="softlabels",
    help="Soft-label caches and offline knowledge distillation for long-tailed recognition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _register() -> None:
    from softlabels.cli import (
        analysis_cmds,
        cache_cmds,
        calibrate_cmds,
        distill_cmds,
        report_cmds,
        train_cmds,
    )

    train_cmds.register(app)
    cache_cmds.register(app)
    analysis_cmds.register(app)
    calibrate_cmds.register(app)
    distill_cmds.register(app)
    report_cmds.register(app)


_register()


def main() -> None:
    app()
