"""Analysis commands: ``tune-tau``."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from softlabels.cli._render import (
    JsonOpt,
    QuietOpt,
    errors_to_exit,
    note,
    out,
    print_json,
    progress_bar,
)
from softlabels.cli._storage import LeaseOpt, StorageOpt, cache_storage

if TYPE_CHECKING:
    from softlabels.analysis import VirtualExamples

__all__ = ["register"]


class Groups(StrEnum):
    auto = "auto"
    absolute = "absolute"
    thirds = "thirds"


def tune_tau(
    cache: Annotated[str, typer.Argument(help="Cache location.")],
    teacher: Annotated[
        str | None, typer.Option(help="Teacher to analyse (default: the cache's only one).")
    ] = None,
    ensemble: Annotated[
        str | None,
        typer.Option(help="NAME,NAME: average these teachers' probabilities per sample and view."),
    ] = None,
    taus: Annotated[
        str, typer.Option(help="Temperatures: START:STOP:STEP (STOP included) or a comma list.")
    ] = "1:10:0.5",
    powers: Annotated[str, typer.Option(help="Powers p in (0, 1], comma separated.")] = "1,0.5",
    groups: Annotated[
        Groups,
        typer.Option(
            help="Head/tail groups: auto (absolute unless one is empty), absolute, thirds."
        ),
    ] = Groups.auto,
    plots: Annotated[
        str | None, typer.Option(help="Folder for the three PNG figures (not drawn without it).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Do not write the choice into the cache.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    storage_options: StorageOpt = None,
    lease_seconds: LeaseOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Virtual-example distribution over a (T, p) grid in one pass, and DiVE's rule of thumb.

    The choice is stored in the cache (for `distill --tau auto`) unless --dry-run.
    """
    with errors_to_exit(), cache_storage(cache, storage_options, lease_seconds):
        from softlabels import open_cache
        from softlabels.analysis import (
            check_writable,
            parse_powers,
            parse_taus,
            plot_virtual_examples,
            store_choice,
            virtual_examples,
        )
        from softlabels.errors import UsageError

        if teacher is not None and ensemble is not None:
            raise UsageError("Expected --teacher NAME or --ensemble NAME,NAME, got both")
        names: str | list[str] | None = teacher
        if ensemble is not None:
            names = [n.strip() for n in ensemble.split(",")]
            if len(names) < 2:
                raise UsageError(f"Expected --ensemble with two or more names, got {ensemble!r}")
        grid_taus, grid_powers = parse_taus(taus), parse_powers(powers)
        opened = open_cache(cache)
        if not dry_run:
            check_writable(opened)
        with progress_bar("tune-tau", enabled=not (json_ or quiet)) as update:
            result = virtual_examples(
                opened,
                names,
                taus=grid_taus,
                powers=grid_powers,
                groups=groups.value,
                device=device,
                progress=update,
            )
        stored = None if dry_run else store_choice(opened, result)
        paths = plot_virtual_examples(result, plots) if plots else []
    data = result.to_dict()
    data["plots"] = paths
    data["stored"] = stored is not None
    if json_:
        print_json(data)
        return
    _render(result, data, quiet=quiet)


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _render(result: VirtualExamples, data: dict[str, Any], *, quiet: bool) -> None:
    names = list(result.group_names)
    table = Table(
        title=f"tune-tau: teacher {result.teacher}, N={result.num_samples}, "
        f"C={result.num_classes}, groups {result.groups}"
    )
    for col in ("", "T", "p", "T/p", "tail/head", "entropy", "max/min"):
        table.add_column(col, justify="right")
    for g in names:
        table.add_column(f"{g} (mean V)", justify="right")
    inp = data["input"]
    table.add_row(
        "input",
        "-",
        "-",
        "-",
        _num(inp["ratio_tail_head"]),
        _num(inp["entropy"]),
        _num(inp["max_min"], ".1f"),
        *(_num(inp["group_means"][g], ".1f") for g in names),
        style="dim",
    )
    for g in data["grid"]:
        table.add_row(
            "◀" if g["chosen"] else "",
            f"{g['tau']:g}",
            f"{g['power']:g}",
            f"{g['tau_eff']:g}",
            _num(g["ratio_tail_head"]),
            _num(g["entropy"]),
            _num(g["max_min"], ".1f"),
            *(_num(g["group_means"][n], ".1f") for n in names),
            style="bold green" if g["chosen"] else None,
        )
    out.print(table)
    for name, how in (data.get("rebuilt") or {}).items():
        out.print(
            f"teacher {name} is stored top-{how['k']}: V comes from the distributions rebuilt by "
            f"rule {how['rule']} v{how['rule_version']} (`softlabels inspect` shows their error)",
            soft_wrap=True,
        )
    ch = data["choice"]
    out.print(
        f"choice: T = {ch['tau']:g}, p = {ch['power']:g} (T/p = {ch['tau_eff']:g}): {ch['reason']}",
        soft_wrap=True,
    )
    if data["stored"]:
        note(
            "stored in the cache (tune_tau); `distill --tau auto` will use it",
            quiet=quiet,
            console=out,
        )
    else:
        note("dry run: the choice was not stored in the cache", quiet=quiet)
    for path in data["plots"]:
        note(f"plot: {path}", quiet=quiet, console=out)


def register(app: typer.Typer) -> None:
    app.command("tune-tau")(tune_tau)
