"""``softlabels distill``: many students from one cache."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from softlabels.cli._render import (
    JsonOpt,
    QuietOpt,
    err,
    errors_to_exit,
    note,
    out,
    print_json,
    progress_bar,
)
from softlabels.cli._storage import StorageOpt, cache_storage
from softlabels.students.methods import get_method, list_methods, option_kinds

_METHODS = ", ".join(list_methods())

__all__ = ["register"]


def distill(
    cache: Annotated[str, typer.Argument(help="Cache made by `softlabels dump` (train split).")],
    dataset: Annotated[str, typer.Option(help="Dataset spec the cache was built from.")],
    out_: Annotated[str, typer.Option("--out", help="Run folder: one sub-folder per student.")],
    plan: Annotated[
        str | None, typer.Option(help="TOML plan: \\[defaults] + one \\[\\[student]] per student.")
    ] = None,
    name: Annotated[str, typer.Option(help="Student name (single-student mode).")] = "student",
    model: Annotated[str | None, typer.Option(help="Student architecture.")] = None,
    method: Annotated[str | None, typer.Option(help=f"One of: {_METHODS}.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher name in the cache.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    sampler: Annotated[str | None, typer.Option(help="instance, class-balanced or sqrt.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Init seed (and data seed unless --data-seed).")
    ] = None,
    data_seed: Annotated[
        int | None, typer.Option(help="Seed of sampling and augmentation.")
    ] = None,
    online: Annotated[
        bool | None,
        typer.Option(
            "--online/--cached",
            help="Run the teacher in the loop on the student's own inputs (the reference "
            "a cache is measured against) instead of reading cached targets.",
        ),
    ] = None,
    view_schedule: Annotated[
        str | None,
        typer.Option(help="Replayed views: epoch (view e mod V), random, or the cache's."),
    ] = None,
    replay_views: Annotated[
        int | None, typer.Option(help="Replay only the first N cached views of each sample.")
    ] = None,
    teacher_model: Annotated[
        list[str] | None,
        typer.Option(help="NAME=MODEL: the model of an online teacher (default: the dump's)."),
    ] = None,
    target_memory: Annotated[
        str | None,
        typer.Option(
            help="Memory budget of the cached teacher targets (2GB, 512MiB, auto: half the "
            "available RAM). Targets larger than it are streamed chunk by chunk in a "
            "chunk-shuffled order. Default: no limit (held whole).",
        ),
    ] = None,
    shuffle: Annotated[
        str | None,
        typer.Option(
            help="Row order of students reading cached targets: auto (chunk-shuffled only "
            "when streamed), full, or chunks."
        ),
    ] = None,
    shuffle_buffer: Annotated[
        int | None,
        typer.Option(
            help="Chunks per window of the chunk-shuffled order (default: as many as fit)."
        ),
    ] = None,
    prefetch: Annotated[
        int | None, typer.Option(help="Chunks read ahead when streaming (default 2).")
    ] = None,
    eval_every: Annotated[int, typer.Option(help="Evaluate students every N epochs.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option(help="Loader threads for file-backed datasets.")] = 2,
    plots: Annotated[bool, typer.Option(help="Write per-class and group plots.")] = True,
    storage_options: StorageOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Also the teacher and ECE columns, full group names.")
    ] = False,
    **options: Any,
) -> None:
    """Train students from cached teacher outputs (one pass feeds every compatible student).

    Flags given with --plan override the plan's values for every student.
    """
    with errors_to_exit(), cache_storage(cache, storage_options):
        from softlabels.distributed import is_main
        from softlabels.errors import UsageError
        from softlabels.students import StudentSpec, load_plan
        from softlabels.students import distill as run_distill
        from softlabels.students.plan import plan_run_settings

        flags: dict[str, Any] = {
            "model": model,
            "method": method,
            "teacher": teacher,
            **{key: _option_value(key, value) for key, value in options.items()},
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "sampler": sampler,
            "seed": seed,
            "data_seed": data_seed,
            "online": online,
            "view_schedule": view_schedule,
            "replay_views": replay_views,
        }
        flags = {k: v for k, v in flags.items() if v is not None}
        run_keys = {
            "target_memory": target_memory,
            "shuffle": shuffle,
            "shuffle_buffer": shuffle_buffer,
            "prefetch": prefetch,
        }
        if plan is not None:
            specs = load_plan(plan, overrides=flags)
            run_keys = plan_run_settings(plan) | {
                k: v for k, v in run_keys.items() if v is not None
            }
        else:
            if "method" not in flags:
                raise UsageError(
                    "Expected --plan PLAN.toml or --method (and --model) for one student"
                )
            specs = [StudentSpec(name=name, **flags)]
        # Under torchrun only rank 0 shows progress and results.
        with progress_bar("distill", enabled=not (json_ or quiet) and is_main()) as update:

            def on_progress(info: dict[str, Any]) -> None:
                students = info["students"]
                total = max(s.epochs for s in students) * info["steps"]
                done = info["epoch"] * info["steps"] + info["step"]
                losses = " ".join(
                    f"{s.name} {s.history[-1]['loss']:.3f}" for s in students if s.history
                )
                update(done, total, f"ep {info['epoch'] + 1} {losses}")

            result = run_distill(
                cache,
                dataset,
                specs,
                out_,
                device=device,
                eval_every=eval_every,
                workers=workers,
                plots=plots,
                progress=on_progress,
                teacher_models=dict(_pair(t) for t in teacher_model or ()),
                target_memory=run_keys.get("target_memory"),
                shuffle=run_keys.get("shuffle") or "auto",
                shuffle_buffer=run_keys.get("shuffle_buffer"),
                prefetch=run_keys.get("prefetch"),
            )
    if not is_main():
        return
    diverged = [s for s in result.students if s["status"] != "ok"]
    if json_:
        print_json(result.to_dict())
    else:
        render_summary(result.to_dict(), wide=wide, quiet=quiet)
        for s in diverged:
            d = s["diverged"] or {}
            others = (
                "no student finished"
                if len(diverged) == len(result.students)
                else "the others finished"
            )
            err.print(
                f"student {s['name']} diverged at epoch {d.get('epoch', 0) + 1}, step {d.get('step')}; {others}"
            )
    if diverged and len(diverged) == len(result.students):
        raise typer.Exit(1)  # the run failed on its own terms: no student to use


def _pair(text: str) -> tuple[str, str]:
    name, sep, model = text.partition("=")
    if not sep or not name.strip() or not model.strip():
        from softlabels.errors import UsageError

        raise UsageError(f"Expected --teacher-model NAME=MODEL, got {text!r}")
    return name.strip(), model.strip()


def _option_value(key: str, value: Any) -> Any:
    """A method option's flag value in the plan's types (tau: a number or 'auto'; names:
    a comma-separated list)."""
    if value is None:
        return None
    kind = option_kinds()[key].kind
    if kind == "names":
        return tuple(v.strip() for v in value.split(",") if v.strip()) or None
    if kind == "tau" and value != "auto":
        try:
            return float(value)
        except ValueError:
            from softlabels.errors import UsageError

            raise UsageError(
                f"Expected --{key.replace('_', '-')} a number or 'auto', got {value!r}"
            ) from None
    return value


_FLAG_TYPES: dict[str, Any] = {"float": float, "int": int, "str": str, "tau": str, "names": str}


def _option_parameter(key: str) -> inspect.Parameter:
    """A CLI flag for a method option, its help made from every method that has it."""
    uses = [(m, opt) for m in list_methods() if (opt := get_method(m).option(key)) is not None]
    text = "; ".join(f"{m}: {opt.help} ({opt.default})" for m, opt in uses)
    flag = "--" + key.replace("_", "-")
    kind = uses[0][1].kind
    if kind == "bool":
        info = typer.Option(f"{flag}/--no-{flag[2:]}", help=text)
        annotation: Any = Annotated[bool | None, info]
    else:
        annotation = Annotated[_FLAG_TYPES[kind] | None, typer.Option(flag, help=text)]
    return inspect.Parameter(
        key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def _with_method_flags(fn: Any) -> Any:
    """``fn``'s signature with its ``**options`` replaced by one flag per method option."""
    sig = inspect.signature(fn, eval_str=True)
    fixed = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = [_option_parameter(k) for k in sorted(option_kinds())]
    fn.__signature__ = sig.replace(parameters=fixed + extra)
    return fn


_SHORT = {"medium": "med", "middle": "mid"}  # the narrow table's group headers
_STATUS = {"model not available": "no model"}  # the narrow table's teacher statuses
_NAME_MIN = 8  # the name column gives way (ellipsis) down to this width


def render_summary(
    result: dict[str, Any],
    *,
    wide: bool = False,
    quiet: bool = False,
    console: Console | None = None,
) -> None:
    """The summary table: one line per teacher and student, fitting the console (80
    columns when piped) with the teacher and ECE columns left to ``wide``."""
    console = console or out
    groups = (
        ("head", "middle", "tail")
        if result["groups_definition"] == "thirds"
        else ("many", "medium", "few")
    )
    heads = ["run", "method", *(["teacher"] if wide else []), "top-1"]
    heads += [g if wide else _SHORT.get(g, g) for g in groups]
    heads += [*(["ECE"] if wide else []), "status"]

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    def line(name: str, method: str, teacher: str, m: dict[str, Any]) -> list[str]:
        status = str(m.get("status", ""))
        return [
            name,
            method,
            *([teacher] if wide else []),
            pct(m.get("top1")),
            *(pct(m.get(g)) for g in groups),
            *([pct(m.get("ece"))] if wide else []),
            status if wide else _STATUS.get(status, status),
        ]

    cells = [line(f"teacher {tr['name']}", "", "", tr) for tr in result["teachers"]]
    cells += [line(s["name"], s["method"], s["teacher"] or "-", s) for s in result["students"]]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(heads)]
    # SIMPLE_HEAD without edges: three characters between columns.
    rest = sum(widths[1:]) + 3 * (len(heads) - 1)
    if wide:
        width = max(widths[0] + rest, console.width)
        console = Console(file=console.file, width=width, highlight=False)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, head in enumerate(heads):
        t.add_column(
            head,
            justify="left" if head in ("run", "method", "teacher", "status") else "right",
            no_wrap=True,
            overflow="ellipsis",
            min_width=widths[i] if i else None,
            max_width=None if wide or i else max(_NAME_MIN, console.width - rest),
        )
    for row in cells:
        t.add_row(*row)
    console.print(
        f"distill → {result['out']} ({result['passes']} pass(es), {result['seconds']:.0f} s)",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print(t)
    if result["groups_definition"] == "thirds":
        note(
            "groups: relative thirds (an absolute shot group is empty)",
            quiet=quiet,
            console=console,
        )
    if not wide:
        note("--wide: the students' teachers and ECE", quiet=quiet, console=console)


def methods(
    json_: Annotated[
        bool, typer.Option("--json", help="Print the methods as JSON on stdout.")
    ] = False,
) -> None:
    """List the distillation methods: what each trains, needs, its sampler and options."""
    from softlabels.students.methods import describe_methods

    rows = describe_methods()
    if json_:
        print_json(rows)
        return
    t = Table(title="methods of softlabels distill")
    for col in ("method", "trains", "needs", "options (defaults)"):
        t.add_column(col, overflow="fold")
    for d in rows:
        opts = ", ".join(f"{o['name']}={o['default']}" for o in d["options"]) or "-"
        t.add_row(d["name"], d["summary"], d["needs"], opts)
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command()(_with_method_flags(distill))
    app.command()(methods)
