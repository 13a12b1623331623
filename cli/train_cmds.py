"""Teacher commands: ``train`` and ``eval``."""

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

__all__ = ["register", "render_metrics"]


def train(
    dataset: Annotated[str, typer.Option(help="Dataset spec, e.g. mnist1d-lt:imb=100.")],
    model: Annotated[str, typer.Option(help="Architecture: resnet20/32/44/56, cnn1d, mlp.")],
    out_: Annotated[
        str, typer.Option("--out", help="Run folder (model.pt, config.json, metrics.parquet).")
    ],
    loss: Annotated[str, typer.Option(help="ce, bsce or ldam.")] = "ce",
    ssl: Annotated[str, typer.Option(help="none or rotation (SSD stage I).")] = "none",
    classifier: Annotated[str, typer.Option(help="linear or cosine.")] = "linear",
    sampler: Annotated[str, typer.Option(help="instance, class-balanced or sqrt.")] = "instance",
    augment: Annotated[str, typer.Option(help="standard, strong (CBD) or none.")] = "standard",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    lr: Annotated[float, typer.Option(help="Base learning rate.")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    weight_decay: Annotated[float, typer.Option(help="Weight decay (not on biases/norms).")] = 5e-4,
    optimizer: Annotated[str, typer.Option(help="sgd or adamw.")] = "sgd",
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    nesterov: Annotated[bool, typer.Option(help="Nesterov momentum.")] = False,
    schedule: Annotated[str, typer.Option(help="cosine, step or constant.")] = "cosine",
    warmup_epochs: Annotated[float, typer.Option(help="Linear warm-up epochs.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of init, sampling and augmentation.")] = 0,
    eval_every: Annotated[int, typer.Option(help="Evaluate on the test split every N epochs.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    workers: Annotated[int, typer.Option(help="Loader threads for file-backed datasets.")] = 2,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a teacher (CE, BSCE or LDAM; optional rotation SSL) and evaluate it."""
    with errors_to_exit():
        from softlabels.engine.optim import OptimConfig
        from softlabels.teachers.train import TrainConfig
        from softlabels.teachers.train import train as run_train

        config = TrainConfig(
            dataset=dataset,
            model=model,
            loss=loss,
            ssl=None if ssl == "none" else ssl,
            classifier=classifier,
            sampler=sampler,
            augment=augment,
            epochs=epochs,
            batch_size=batch_size,
            optim=OptimConfig(
                optimizer=optimizer,
                lr=lr,
                momentum=momentum,
                nesterov=nesterov,
                weight_decay=weight_decay,
                schedule=schedule,
                warmup_epochs=warmup_epochs,
            ),
            seed=seed,
            eval_every=eval_every,
        )
        with progress_bar("train", enabled=not (json_ or quiet)) as update:

            def on_progress(info: dict[str, Any]) -> None:
                done = info["epoch"] * info["steps"] + info["step"]
                update(done, epochs * info["steps"])

            result = run_train(config, out_, device=device, workers=workers, progress=on_progress)
    if json_:
        print_json(result.to_dict())
        return
    if result.resumed_from:
        note(f"resumed from epoch {result.resumed_from}", quiet=quiet)
    render_metrics(
        f"teacher {result.model_path} ({result.seconds:.1f} s)", result.metrics, quiet=quiet
    )


def render_metrics(title: str, m: dict[str, Any], *, quiet: bool = False) -> None:
    t = Table(title=title)
    groups = m.get("groups") or {
        k: m.get(k) for k in ("many", "medium", "few", "head", "middle", "tail") if k in m
    }
    definition = groups.get("definition", m.get("group_definition", "absolute"))
    names = ("head", "middle", "tail") if definition == "thirds" else ("many", "medium", "few")
    for col in ("top-1", *names, "ECE"):
        t.add_column(col, justify="right")

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    t.add_row(pct(m.get("top1")), *(pct(groups.get(k)) for k in names), pct(m.get("ece")))
    out.print(t)
    if definition == "thirds":
        absolute = ", ".join(f"{k} {pct(groups.get(k))}" for k in ("many", "medium", "few"))
        note(
            f"groups: relative thirds (an absolute shot group is empty: {absolute})",
            quiet=quiet,
            console=out,
        )


def evaluate(
    dataset: Annotated[str, typer.Option(help="Dataset spec.")],
    model: Annotated[
        str, typer.Option(help="Model spec: checkpoint, tv:NAME@w.pt, ts:FILE, py:MOD:FN.")
    ],
    split: Annotated[str, typer.Option(help="test or train.")] = "test",
    groups: Annotated[str, typer.Option(help="auto, absolute or thirds.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 512,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    per_class: Annotated[
        bool, typer.Option(help="Also print the per-class accuracy table.")
    ] = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Top-1 on the balanced test split, per-class and shot-group accuracy, ECE."""
    with errors_to_exit():
        from softlabels.errors import UsageError
        from softlabels.evaluation import evaluate_model

        if groups not in ("auto", "absolute", "thirds"):
            raise UsageError(f"Expected --groups auto, absolute or thirds, got {groups!r}")
        if split not in ("train", "test"):
            raise UsageError(f"Expected --split train or test, got {split!r}")
        result = evaluate_model(
            dataset, model, split=split, groups=groups, device=device, batch_size=batch_size
        )
    if json_:
        print_json(
            {
                k: result[k]
                for k in ("top1", "per_class", "groups", "ece", "dataset", "model", "split")
            }
        )
        return
    render_metrics(f"{model} on {result['dataset']} ({split})", result, quiet=quiet)
    if per_class:
        t = Table(title="per class")
        for col in ("class", "name", "train count", "accuracy"):
            t.add_column(col, justify="right")
        for i, (name, n, acc) in enumerate(
            zip(result["class_names"], result["train_counts"], result["per_class"], strict=True)
        ):
            t.add_row(str(i), name, str(n), "-" if acc is None else f"{100 * acc:.2f}")
        out.print(t)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command(name="eval")(evaluate)
