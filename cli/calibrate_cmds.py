"""``softlabels calibrate``: SSD stage II (LWS, cRT, tau-norm) on a cache's features."""

from __future__ import annotations

from typing import Annotated, Any

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

__all__ = ["register"]


def calibrate(
    cache: Annotated[str, typer.Argument(help="Cache location (a folder or an fsspec URL).")],
    teacher: Annotated[str, typer.Option(help="Teacher of the cache to calibrate.")],
    method: Annotated[
        str,
        typer.Option(
            help="lws (per-class scale on the frozen classifier), crt (re-trained "
            "classifier) or tau-norm (W_c / ||W_c||^p, bias dropped, no training)."
        ),
    ],
    epochs: Annotated[int, typer.Option(help="Training epochs (lws, crt).")] = 10,
    lr: Annotated[
        float | None,
        typer.Option(help="SGD learning rate (momentum 0.9, cosine); default: lws 0.2, crt 0.1."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Samples (row, view) per step.")] = 512,
    weight_decay: Annotated[
        float,
        typer.Option(help="Weight decay: on LWS's scales, on cRT's weight matrix (not its bias)."),
    ] = 5e-4,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of cRT's init.")] = 0,
    tau_norm_power: Annotated[
        float, typer.Option(help="Power p of tau-norm: W_c / ||W_c||^p.")
    ] = 1.0,
    keep_bias: Annotated[
        bool,
        typer.Option(
            "--keep-bias/--drop-bias",
            help="tau-norm: keep the classifier's bias (the reference code drops it).",
        ),
    ] = False,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="The cache's dataset spec: evaluate before/after on its test split "
            "(runs the source model once); without it, on the cached training features."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = "cpu",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing NAME+METHOD teacher.")
    ] = False,
    storage_options: StorageOpt = None,
    lease_seconds: LeaseOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Calibrate a teacher on its cached features; store it as the teacher NAME+METHOD."""
    with errors_to_exit(), cache_storage(cache, storage_options, lease_seconds):
        from softlabels.calibration import calibrate as run_calibrate

        with progress_bar("calibrate", enabled=not (json_ or quiet)) as update:
            result = run_calibrate(
                cache,
                teacher,
                method,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                seed=seed,
                device=device,
                tau_norm_power=tau_norm_power,
                keep_bias=keep_bias,
                weight_decay=weight_decay,
                overwrite=overwrite,
                dataset=dataset,
                progress=update,
            )
    data = result.to_dict()
    if json_:
        print_json(data)
        return
    _render(data, quiet=quiet)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _render(data: dict[str, Any], *, quiet: bool) -> None:
    head = Table(title=f"calibrate → {data['teacher']} in {data['url']}", show_header=False)
    head.add_row("method", f"{data['method']} on {data['source']} ({data['classifier_kind']})")
    head.add_row(
        "samples x views x classes",
        f"{data['num_samples']} x {data['num_views']} x {data['num_classes']}",
    )
    if data["method"] == "tau-norm":
        head.add_row("tau-norm power", f"{data['tau_norm_power']:g}")
    else:
        head.add_row(
            "training",
            f"{data['epochs']} epochs, {data['steps']} steps, lr {data['lr']:g}, "
            f"batch {data['batch_size']}, seed {data['seed']}, class-balanced",
        )
        if data["losses"]:
            head.add_row("loss", f"{data['losses'][0]:.4f} → {data['losses'][-1]:.4f}")
    if data["lws_scale"]:
        s = data["lws_scale"]
        head.add_row("lws scale", f"min {s['min']:.3f}, mean {s['mean']:.3f}, max {s['max']:.3f}")
    head.add_row("logits", data["extra"]["formula"])
    if data["replaced"]:
        head.add_row("replaced", "yes (--overwrite)")
    head.add_row("time", f"{data['seconds']:.1f} s on {data['device']}")
    out.print(head)

    ev = data["evaluation"]
    where = (
        f"test split of {ev['dataset']}"
        if ev["split"] == "test"
        else "cached training features (every view)"
    )
    before, after = ev["before"], ev["after"]
    groups = before["groups"]
    t = Table(title=f"accuracy (%) on the {where}")
    for col in ("", "before", "after", "change"):
        t.add_column(col, justify="right" if col else "left")
    rows = [
        ("top-1", before["top1"], after["top1"]),
        ("balanced (mean per class)", before["balanced"], after["balanced"]),
    ]
    keys = (
        ("head", "middle", "tail")
        if groups["definition"] == "thirds"
        else ("many", "medium", "few")
    )
    for k in keys:
        rows.append((k, groups.get(k), after["groups"].get(k)))
    for label, b, a in rows:
        change = "-" if a is None or b is None else f"{100 * (a - b):+.2f}"
        t.add_row(label, _pct(b), _pct(a), change)
    t.add_row(
        "ECE",
        _pct(before["ece"]),
        _pct(after["ece"]),
        f"{100 * (after['ece'] - before['ece']):+.2f}",
    )
    out.print(t)
    if groups["definition"] == "thirds":
        note(
            "  groups: relative thirds of the classes by training count (a shot group is empty)",
            quiet=quiet,
            console=out,
        )


def register(app: typer.Typer) -> None:
    app.command()(calibrate)
