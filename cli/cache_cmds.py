"""Cache commands: ``dump``, ``inspect``, ``verify``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from softlabels.cli._render import (
    JsonOpt,
    QuietOpt,
    errors_to_exit,
    human_bytes,
    out,
    print_json,
    progress_bar,
)
from softlabels.cli._storage import LeaseOpt, StorageOpt, cache_storage

__all__ = ["register"]


def dump(
    dataset: Annotated[str, typer.Option(help="Dataset spec, e.g. mnist1d-lt:imb=100.")],
    teacher: Annotated[
        list[str],
        typer.Option(help="NAME=MODEL (checkpoint, tv:NAME@w.pt, ts:FILE, py:MOD:FN); repeatable."),
    ],
    out_: Annotated[str, typer.Option("--out", help="Cache location: a folder or an fsspec URL.")],
    views: Annotated[
        int,
        typer.Option(help="0: one clean view (eval transform); K >= 1: K seeded augmented views."),
    ] = 0,
    features: Annotated[bool, typer.Option(help="Also store penultimate features.")] = True,
    dtype: Annotated[str, typer.Option(help="float16 or float32.")] = "float16",
    chunk_size: Annotated[
        int, typer.Option(help="Rows per chunk (the unit of commit and resume).")
    ] = 1024,
    batch_size: Annotated[int, typer.Option(help="Teacher batch size.")] = 256,
    split: Annotated[str, typer.Option(help="Dataset split to dump: train or test.")] = "train",
    strength: Annotated[
        str, typer.Option(help="Augmentation of views: standard or strong.")
    ] = "standard",
    compressor: Annotated[str, typer.Option(help="zstd, blosc or none.")] = "zstd",
    topk: Annotated[
        int | None,
        typer.Option(
            help="Sparse: keep the K largest logits per view (1 <= K < C) and the rest's "
            "log-sum-exp; softmax at any temperature is rebuilt, its error is recorded."
        ),
    ] = None,
    mixup: Annotated[
        float,
        typer.Option(help="Mixed views: Mixup with lam ~ Beta(A, A) (0 = off; needs --mix-prob)."),
    ] = 0.0,
    cutmix: Annotated[
        float,
        typer.Option(help="Mixed views: CutMix, box area 1 - lam, lam ~ Beta(A, A) (0 = off)."),
    ] = 0.0,
    mix_prob: Annotated[
        float,
        typer.Option(
            help="Probability that a view is mixed with a partner row drawn from its own seed "
            "(both alphas > 0: CutMix or Mixup with probability 1/2)."
        ),
    ] = 0.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[
        int, typer.Option(help="Seed of the views (= a student's --data-seed for epoch views).")
    ] = 0,
    schedule: Annotated[
        str,
        typer.Option(help="Views: epoch (view v is what epoch v of an online run sees) or random."),
    ] = "epoch",
    workers: Annotated[
        int | None,
        typer.Option(
            help="Threads that load a file-backed dataset's batches ahead (default: 2, "
            "or 1 below 4 cores); in-memory datasets are indexed in place."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a cache made with other settings.")
    ] = False,
    break_lock: Annotated[
        bool,
        typer.Option(
            help="A stale lock whose holder may still run (another host's, an unexpired "
            "lease): take it over. A dead writer's lock needs no flag; a live process of this "
            "host keeps its lock."
        ),
    ] = False,
    storage_options: StorageOpt = None,
    lease_seconds: LeaseOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run teachers once over a dataset and write their logits (and features) to a cache."""
    with errors_to_exit(), cache_storage(out_, storage_options, lease_seconds):
        from softlabels.distributed import is_main
        from softlabels.teachers import DumpConfig, parse_teacher
        from softlabels.teachers import dump as run_dump

        config = DumpConfig(
            dataset=dataset,
            teachers=tuple(parse_teacher(t) for t in teacher),
            views=views,
            features=features,
            dtype=dtype,
            chunk_size=chunk_size,
            batch_size=batch_size,
            seed=seed,
            split=split,
            strength=strength,
            compressor=compressor,
            schedule=schedule,
            topk=topk,
            mixup=mixup,
            cutmix=cutmix,
            mix_prob=mix_prob,
        )
        # Under torchrun only rank 0 shows progress (of its share of the chunks) and results.
        with progress_bar("dump", enabled=not (json_ or quiet) and is_main()) as update:
            result = run_dump(
                config,
                out_,
                device=device,
                overwrite=overwrite,
                break_lock=break_lock,
                workers=workers,
                progress=update,
            )
    if not is_main():
        return
    data = result.to_dict()
    if json_:
        print_json(data)
        return
    if result.status == "complete":
        out.print(f"{result.url} is already complete: nothing to do.")
        return
    table = Table(title=f"dump → {result.url}", show_header=False)
    table.add_row("status", result.status)
    table.add_row(
        "samples x views x classes",
        f"{result.num_samples} x {result.num_views} x {result.num_classes}",
    )
    table.add_row("teachers", ", ".join(result.teachers))
    table.add_row("chunks written", f"{result.chunks_written} of {result.chunks_total}")
    table.add_row("size on disk", human_bytes(result.bytes_on_disk))
    table.add_row("time", f"{result.seconds:.1f} s")
    out.print(table)


def inspect(
    cache: Annotated[str, typer.Argument(help="Cache location.")],
    storage_options: StorageOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Describe a cache: shape, teachers, dtypes, sizes, completeness, class counts."""
    with errors_to_exit(), cache_storage(cache, storage_options):
        from softlabels import open_cache
        from softlabels.inspection import describe

        info = describe(open_cache(cache))
    if json_:
        print_json(info)
        return
    _render_describe(info)


def _render_describe(info: dict[str, Any]) -> None:
    from softlabels.stores.schema import TuneTau, ViewsInfo

    head = Table(title=f"cache {info['url']}", show_header=False)
    head.add_row("dataset", f"{info['dataset']['spec']} ({info['dataset']['split']} split)")
    head.add_row("N x V x C", f"{info['N']} x {info['V']} x {info['C']}")
    views = ViewsInfo.from_dict(info["views"]) if info.get("views") else None
    head.add_row(
        "views",
        f"{views.mode} (count {views.count}, seed {views.seed})"
        if views
        else "None (count None, seed None)",
    )
    if info.get("mixing"):
        mx = info["mixing"]
        head.add_row(
            "mixed views",
            f"mixup {mx['mixup']:g}, cutmix {mx['cutmix']:g}, prob {mx['prob']:g} "
            f"(rule {mx['rule']} v{mx['rule_version']}); "
            + (
                f"{100 * mx['fraction_mixed']:.1f} % of views mixed"
                if mx["fraction_mixed"] is not None
                else "no chunk committed yet"
            ),
        )
    head.add_row("chunks", f"{info['chunks']} of {info['chunk_size']} rows")
    head.add_row(
        "size on disk",
        f"{human_bytes(info['bytes_on_disk'])} ({info['bytes_per_sample']:.1f} B/sample)",
    )
    head.add_row("complete", "yes" if info["complete"] else f"no: {info['missing_chunks']}")
    if "classes" in info:
        cl = info["classes"]
        head.add_row(
            "class counts",
            f"{cl['counts_max']} … {cl['counts_min']} (imbalance {cl['imbalance']:.1f}); "
            + ", ".join(f"{k} {v}" for k, v in cl["groups"].items()),
        )
    if info.get("tune_tau"):
        tuned = TuneTau.from_dict(info["tune_tau"])
        head.add_row("tune-tau", f"T={tuned.choice.tau} p={tuned.choice.power} ({tuned.teacher})")
    out.print(head)
    t = Table(title="teachers")
    for col in ("name", "dtype", "logits", "features", "classifier", "size", "complete"):
        t.add_column(col)
    for tr in info["teachers"]:
        shape = "x".join(map(str, tr["logits_shape"]))
        t.add_row(
            tr["name"],
            str(tr["dtype"]).replace("float", "fp"),
            f"top-{tr['k']} of {shape}" if tr.get("storage") == "topk" else shape,
            "x".join(map(str, tr["features_shape"])) if tr["features_shape"] else "-",
            str(tr["classifier"] or "-"),
            f"{human_bytes(tr['bytes_on_disk'])} ({tr['bytes_per_sample']:.0f} B/sample)",
            "yes" if tr["complete"] else "no",
        )
    out.print(t)
    for tr in info["teachers"]:
        out.print(f"  {tr['name']}: {tr['model']}")
    for tr in info["teachers"]:
        if tr.get("topk_error"):
            _render_topk_error(tr)


def _render_topk_error(tr: dict[str, Any]) -> None:
    """A sparse teacher's measured error: KL(teacher || rebuilt) per target, top-1 agreement."""
    topk, summary = tr["topk"], tr["topk_error"]["summary"]
    chunks = len(tr["topk_error"]["chunks"])
    t = Table(
        title=f"top-{topk['k']} error of {tr['name']} (rule {topk['rule']} v{topk['rule_version']}, "
        f"{chunks} chunks): KL(softmax_T(teacher) || rebuilt_T)"
    )
    for col in ("target", "mean", "max"):
        t.add_column(col, justify="right")
    tau, power = topk["error_dive"]
    targets = [(f"T = {x:g}", f"t{x:g}") for x in topk["error_taus"]]
    targets.append((f"DiVE T = {tau:g}, p = {power:g}", "dive"))
    for label, tag in targets:
        mean, top = summary.get(f"kl_mean_{tag}"), summary.get(f"kl_max_{tag}")
        if mean is not None and top is not None:
            t.add_row(label, f"{mean:.3g}", f"{top:.3g}")
    out.print(t)
    agree = summary.get("top1_agreement")
    if agree is not None:
        out.print(f"  top-1 agreement with the teacher: {100 * agree:.2f} %")


def verify(
    cache: Annotated[str, typer.Argument(help="Cache location.")],
    dataset: Annotated[
        str | None, typer.Option(help="Also check the cache belongs to this dataset spec.")
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="NAME=MODEL: also re-run this teacher on --sample cached views (needs --dataset)."
        ),
    ] = None,
    sample: Annotated[int, typer.Option(help="Cached (row, view) pairs to re-run.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the sample of views.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    storage_options: StorageOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Recompute every chunk checksum, check completeness and the dataset fingerprint;
    with --teacher, re-run a teacher on a sample of cached views and compare its logits.

    Exit 0 when sound, 1 when something is wrong, 2 for usage errors.
    """
    with errors_to_exit(), cache_storage(cache, storage_options):
        from softlabels.errors import UsageError
        from softlabels.inspection import verify as run_verify

        report = run_verify(cache, dataset)
        if teacher is not None:
            from softlabels.teachers import parse_teacher
            from softlabels.teachers.recheck import recheck_teacher

            if dataset is None:
                raise UsageError("Expected --dataset with --teacher (its inputs are regenerated)")
            spec = parse_teacher(teacher)
            if report["ok"]:  # re-run only a sound cache
                recheck = recheck_teacher(
                    cache, dataset, spec.name, spec.model, sample=sample, seed=seed, device=device
                )
                report["teacher_check"] = recheck
                for b in recheck["bad"]:
                    report["problems"].append(
                        {
                            "kind": "teacher",
                            "where": f"row {b['row']} ({b['sample_id']}), view {b['view']}",
                            "chunk": None,
                            "message": f"|delta logit| {b['max_abs_delta']:.3g} beyond the "
                            f"{recheck['dtype']} tolerance",
                        }
                    )
                report["ok"] = recheck["ok"]
    if json_:
        print_json(report)
    else:
        check = report.get("teacher_check")
        if check is not None:
            out.print(
                f"teacher {check['teacher']} re-run on {check['sampled']} cached views: max |delta| "
                f"{check['max_abs_delta']:.3g}, top-1 agreement {100 * check['top1_agreement']:.2f} %, "
                f"KL mean {check['kl_mean']:.3g} (max {check['kl_max']:.3g})"
            )
        if report["ok"]:
            out.print(
                f"[green]ok[/]: {report['url']} ({report['files_checked']} files checked, {report['chunks']} chunks)"
            )
        else:
            t = Table(title=f"{report['url']}: {len(report['problems'])} problem(s)")
            for col in ("kind", "where", "chunk", "message"):
                t.add_column(col)
            for p in report["problems"]:
                t.add_row(
                    p["kind"],
                    p["where"],
                    "-" if p["chunk"] is None else str(p["chunk"]),
                    p["message"],
                )
            out.print(t)
    if not report["ok"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(dump)
    app.command()(inspect)
    app.command()(verify)
