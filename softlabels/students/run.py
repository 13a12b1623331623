"""``softlabels distill``: many students from one cache, in as few passes as possible.

Students that share sampler, batch size, data seed and view mode share one pass: each
batch is loaded and augmented once and fed to all of them. Each keeps its own model,
optimiser, schedule, method and init seed, so it ends exactly as if trained alone.

Under torchrun every rank trains every student with DistributedDataParallel on its slice
of each global batch (see :mod:`softlabels.engine.inputs`) and gathers only its rows of the
teacher targets; rank 0 decides resumption (and sends the state), evaluates, and writes
checkpoints, metrics and the summary; every rank returns rank 0's result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softlabels.errors import UsageError
from softlabels.stores.cache import ArrayReader
from softlabels.students.plan import StudentSpec

__all__ = ["DistillResult", "distill"]


@dataclass
class DistillResult:
    out: str
    students: list[dict[str, Any]]
    teachers: list[dict[str, Any]]
    passes: int
    seconds: float
    groups_definition: str
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _teacher_of(spec: StudentSpec, cache: Any) -> str | None:
    """The logit teacher of a student (None for methods without one), checked against the cache."""
    names = cache.teacher_names
    if spec.teacher is not None and spec.teacher not in names:
        raise UsageError(
            f"student {spec.name!r} asks for teacher {spec.teacher!r}; the cache has {', '.join(names)}"
        )
    if spec.method == "ecl":  # the cached teacher is an optional extra expert
        return spec.teacher
    if spec.method == "cbd" or not spec.needs_teacher:
        return None
    if spec.teacher is not None:
        name = spec.teacher
    elif len(names) == 1:
        name = names[0]
    else:
        raise UsageError(
            f"student {spec.name!r} (method {spec.method}) needs teacher = one of {', '.join(names)}"
        )
    if spec.method == "ssd" and not cache.teacher(name).info.get("calibration"):
        raise UsageError(
            f"student {spec.name!r} (SSD) needs a calibrated teacher; run `softlabels calibrate CACHE "
            f'--teacher {name} --method lws` and use teacher = "{name}+lws"'
        )
    return name


def _feature_teachers(spec: StudentSpec, cache: Any) -> list[str]:
    """CBD's K feature teachers: the listed ones, or every teacher with cached features."""
    if spec.method != "cbd":
        return []
    names = (
        list(spec.teachers)
        if spec.teachers
        else [t for t in cache.teacher_names if cache.teacher(t).info.get("features")]
    )
    if spec.teacher and not spec.teachers:
        names = [spec.teacher]
    if not names:
        raise UsageError(
            f"student {spec.name!r} (CBD) needs cached teacher features; dump without --no-features"
        )
    for name in names:
        if name not in cache.teacher_names:
            raise UsageError(
                f"student {spec.name!r} asks for teacher {name!r}; the cache has {', '.join(cache.teacher_names)}"
            )
        if not cache.teacher(name).info.get("features"):
            raise UsageError(
                f"student {spec.name!r} (CBD) needs the features of teacher {name!r}, which were not cached; "
                "dump it without --no-features"
            )
    return names


def _build_student_model(
    spec: StudentSpec, ds: Any, feature_dims: int, seed: int
) -> torch.nn.Module:
    from softlabels.models import create_model

    in_channels = int(ds.input_shape[0])
    backbone_kwargs = {"in_features": int(np.prod(ds.input_shape))} if spec.model == "mlp" else None
    common = {"num_classes": ds.num_classes, "in_channels": in_channels, "seed": seed}
    if spec.method == "cbd":
        return create_model(
            "projected",
            backbone=spec.model,
            proj_dim=feature_dims,
            backbone_kwargs=backbone_kwargs,
            classifier="cosine",
            **common,
        )
    if spec.method == "ssd":
        return create_model(
            "twohead",
            backbone=spec.model,
            backbone_kwargs=backbone_kwargs,
            classifier=spec.classifier,
            **common,
        )
    if spec.method == "ecl":
        return create_model(
            "experts",
            backbone=spec.model,
            num_experts=spec.experts,
            inference=spec.inference,
            backbone_kwargs=backbone_kwargs,
            **common,
        )
    return create_model(spec.model, classifier=spec.classifier, **(backbone_kwargs or {}), **common)


def _view_mode(spec: StudentSpec, cache_mode: str) -> str:
    if spec.views == "replay" and cache_mode != "augmented":
        raise UsageError(
            f"student {spec.name!r} asks for replayed views, but the cache holds clean outputs only (dump with --views K)"
        )
    if spec.views == "own" or cache_mode != "augmented":
        return "own"
    return "replay"


def distill(
    cache_url: str,
    dataset: str,
    specs: list[StudentSpec],
    out: str | Path,
    *,
    device: str = "auto",
    eval_every: int = 1,
    workers: int = 2,
    plots: bool = True,
    evaluate_teachers: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> DistillResult:
    from softlabels import check_dataset, distributed, open_cache
    from softlabels.data import load_dataset
    from softlabels.engine.inputs import BatchStream, predict
    from softlabels.engine.loop import Student, fit
    from softlabels.engine.optim import OptimConfig
    from softlabels.engine.samplers import make_sampler
    from softlabels.metrics import evaluate_logits, group_definition
    from softlabels.students.methods import MIXUP_TARGET, make_step, resolve_hparams
    from softlabels.students.targets import load_targets

    t0 = time.perf_counter()
    if not specs:
        raise UsageError("Expected at least one student")
    if eval_every < 1:
        raise UsageError(f"Expected --eval-every >= 1, got {eval_every}")
    if distributed.launched() and str(cache_url).startswith("memory://"):
        raise UsageError(
            f"{cache_url} lives in the memory of one process; under torchrun give a cache "
            "that every rank sees (a shared folder or an object-store URL)"
        )
    ctx = distributed.setup(device)
    dev = ctx.device
    if not ctx.is_main:
        progress = None
    cache = open_cache(cache_url)
    ds = load_dataset(dataset)
    if cache.dataset.get("split", "train") != "train":
        raise UsageError(
            f"cache {cache.url} holds the {cache.dataset.get('split')} split; distill needs a train-split cache"
        )
    check_dataset(cache, ds, "train")
    out = Path(out)
    if ctx.is_main:  # the only rank that writes into the run folder
        out.mkdir(parents=True, exist_ok=True)
    counts_np = ds.class_counts("train")
    counts = torch.as_tensor(counts_np, device=dev)
    definition = group_definition(counts_np)
    teacher_of = {s.name: _teacher_of(s, cache) for s in specs}
    feature_teachers = {s.name: _feature_teachers(s, cache) for s in specs}
    hps = {s.name: resolve_hparams(s, cache.meta.get("tune_tau")) for s in specs}
    cache_mode = str((cache.meta.get("views") or {}).get("mode", "clean"))
    strength = (cache.meta.get("views") or {}).get("strength") or "standard"
    modes = {s.name: _view_mode(s, cache_mode) for s in specs}
    used = sorted(
        {t for t in teacher_of.values() if t is not None}
        | {t for ts in feature_teachers.values() for t in ts}
    )
    with_features = {t for ts in feature_teachers.values() for t in ts}
    with_features |= {
        teacher_of[s.name]
        for s in specs
        if s.method == "ecl"
        and teacher_of[s.name]
        and cache.teacher(teacher_of[s.name]).info.get("features")
    }
    for t in used:
        cache.require_complete(t)
    # every chunk checksum verified while reading
    targets = {t: load_targets(cache, t, dev, features=t in with_features) for t in used}
    cached_seeds = (
        ArrayReader(cache, "views/seed").read_all() if "replay" in modes.values() else None
    )

    def evaluate(m: torch.nn.Module) -> dict[str, Any]:
        metrics = evaluate_logits(
            predict(m, ds, "test", device=dev), ds.test.labels, counts_np, groups=definition
        )
        if hasattr(
            m, "hard_head"
        ):  # SSD: the soft head is reported, the hard head recorded beside it
            hard = evaluate_logits(
                predict(m, ds, "test", device=dev, forward=lambda mm, x: mm.heads(x)[0]),
                ds.test.labels,
                counts_np,
                groups=definition,
            )
            metrics["hard_top1"] = hard["top1"]
            metrics.update({f"hard_{k}": v for k, v in hard["groups"].items() if k != "definition"})
        return metrics

    groups: dict[tuple[Any, ...], list[StudentSpec]] = {}
    for s in specs:
        groups.setdefault((s.sampler_name, s.batch_size, s.stream_seed, modes[s.name]), []).append(
            s
        )
    runs: list[Student] = []
    for (sampler_name, batch_size, seed, mode), members in groups.items():
        students = []
        for spec in members:
            fdims = sum(
                int(cache.teacher(t).info["feature_dim"]) for t in feature_teachers[spec.name]
            )
            model = _build_student_model(spec, ds, fdims, spec.seed).to(dev)
            resolved = {
                "spec": spec.to_dict(),
                "hparams": hps[spec.name],
                "teacher": teacher_of[spec.name],
                "feature_teachers": feature_teachers[spec.name],
                "sampler": spec.sampler_name,
                "views": mode,
                "mixup_target": MIXUP_TARGET if spec.mixup > 0 else None,
                "cache": {"url": cache.url, "config_key": cache.meta.get("config_key")},
                "dataset": ds.spec,
                "fingerprint": ds.train.fingerprint(),
            }
            optim = OptimConfig(
                optimizer=spec.optimizer,
                lr=spec.lr,
                momentum=spec.momentum,
                nesterov=spec.nesterov,
                weight_decay=spec.weight_decay,
                schedule=spec.schedule,
                warmup_epochs=spec.warmup_epochs,
            )
            tgt = targets.get(teacher_of[spec.name]) if teacher_of[spec.name] else None
            student = Student(
                name=spec.name,
                model=model,
                optim=optim,
                epochs=spec.epochs,
                step_fn=make_step(
                    spec,
                    hps[spec.name],
                    counts,
                    tgt,
                    [targets[t] for t in feature_teachers[spec.name]],
                ),
                evaluate_fn=evaluate,
                out_dir=out / spec.name,
                config=resolved,
            )
            if ctx.distributed:
                # Rank 0's saved state (if any) on every rank: the run folder need not be shared.
                state = distributed.broadcast_state(student.read_state() if ctx.is_main else None)
                if state is not None:
                    student.load_state(state)
            else:
                student.try_resume()
            students.append(student)
        stream = BatchStream(
            ds,
            make_sampler(sampler_name, ds.train.labels, ds.num_classes, seed),
            batch_size=batch_size,
            device=dev,
            augment=ds.recipe.get("kind") != "none",
            strength=strength if mode == "replay" else "standard",
            seed=seed,
            workers=workers,
            cached_views=cached_seeds if mode == "replay" else None,
            rank=ctx.rank,
            world=ctx.world,
        )
        done = list(runs)

        def on_epoch_end(
            _s: Student, done: list[Student] = done, current: list[Student] = students
        ) -> None:
            if ctx.is_main:  # metrics.parquet is current after every epoch
                _write_tables(out, done + current)

        fit(students, stream, eval_every=eval_every, progress=progress, on_epoch_end=on_epoch_end)
        runs.extend(students)

    if ctx.distributed and not ctx.is_main:
        return DistillResult(**distributed.broadcast_json(None))
    result = _finish(
        out,
        runs,
        specs,
        teacher_of,
        hps,
        modes,
        ds,
        cache,
        counts_np,
        definition,
        dev,
        t0,
        len(groups),
        plots,
        evaluate_teachers,
    )
    if ctx.distributed:
        distributed.broadcast_json(result.to_dict())
    return result


def _write_tables(out: Path, runs: list[Any]) -> None:
    from softlabels.students.report import write_parquet

    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for s in runs for r in s.history]
    write_parquet(out / "metrics.parquet", rows)


def _finish(
    out: Path,
    runs: list[Any],
    specs: list[StudentSpec],
    teacher_of: dict[str, str | None],
    hps: dict[str, dict[str, Any]],
    modes: dict[str, str],
    ds: Any,
    cache: Any,
    counts_np: np.ndarray,
    definition: str,
    dev: torch.device,
    t0: float,
    passes: int,
    plots: bool,
    evaluate_teachers: bool,
) -> DistillResult:
    from softlabels.metrics import shot_groups, thirds_groups
    from softlabels.models import save_checkpoint
    from softlabels.students.report import plot_groups, plot_per_class, write_json, write_parquet

    _write_tables(out, runs)
    by_name = {s.name: s for s in runs}
    group_names = (
        ("head", "middle", "tail") if definition == "thirds" else ("many", "medium", "few")
    )
    shot = shot_groups(counts_np) if definition == "absolute" else thirds_groups(counts_np)
    students: list[dict[str, Any]] = []
    per_class_rows: list[dict[str, Any]] = []
    per_class_plot: dict[str, list[float | None]] = {}
    group_plot: dict[str, dict[str, float | None]] = {}
    for spec in specs:
        s = by_name[spec.name]
        final = s.history[-1] if s.history else {}
        status = "ok" if s.diverged is None else "diverged"
        if s.diverged is None and s.history:
            save_checkpoint(
                out / spec.name / "model.pt",
                s.model,
                extra={
                    "config": json.dumps(s.config, sort_keys=True),
                    "metrics": json.dumps(
                        {k: v for k, v in final.items() if not k.startswith("_")}
                    ),
                },
            )
        entry = {
            "name": spec.name,
            "method": spec.method,
            "model": spec.model,
            "teacher": teacher_of[spec.name]
            or ("+".join(s.config.get("feature_teachers") or []) or None),
            "views": modes[spec.name],
            "hparams": hps[spec.name],
            "status": status,
            "diverged": s.diverged,
            "epochs": s.epochs_done,
            "model_path": str(out / spec.name / "model.pt") if status == "ok" else None,
            **{k: final.get(k) for k in ("top1", *group_names, "ece")},
        }
        if spec.mixup > 0:
            entry["mixup_target"] = "mixed-targets"
        if spec.final_lws and status == "ok":
            entry["hard_lws"] = _final_lws(s.model, spec, ds, counts_np, definition)
            write_json(out / spec.name / "final_lws.json", entry["hard_lws"])
        students.append(entry)
        pc = final.get("_per_class")
        if pc is not None:
            per_class_plot[spec.name] = pc
            group_plot[spec.name] = {g: final.get(g) for g in group_names}
            for c, acc in enumerate(pc):
                per_class_rows.append(
                    {
                        "student": spec.name,
                        "class_id": c,
                        "name": ds.class_names[c],
                        "train_count": int(counts_np[c]),
                        "group": str(shot[c]),
                        "accuracy": acc,
                    }
                )
    teachers = (
        _evaluate_teachers(
            cache, sorted({t for t in teacher_of.values() if t}), ds, counts_np, definition, dev
        )
        if evaluate_teachers
        else []
    )
    for t in teachers:
        if t.get("per_class") is not None:
            per_class_plot[f"teacher {t['name']}"] = t["per_class"]
            group_plot[f"teacher {t['name']}"] = {g: t.get(g) for g in group_names}
    write_parquet(out / "per_class.parquet", per_class_rows)
    files = {
        "metrics": str(out / "metrics.parquet"),
        "per_class": str(out / "per_class.parquet"),
        "summary": str(out / "summary.json"),
    }
    if plots and per_class_plot:
        files["plot_per_class"] = str(
            plot_per_class(out / "per_class.png", counts_np, per_class_plot)
        )
        files["plot_groups"] = str(plot_groups(out / "groups.png", group_plot, group_names))
    result = DistillResult(
        out=str(out),
        students=students,
        teachers=[{k: v for k, v in t.items() if k != "per_class"} for t in teachers],
        passes=passes,
        seconds=time.perf_counter() - t0,
        groups_definition=definition,
        files=files,
    )
    write_json(out / "summary.json", result.to_dict())
    return result


def _final_lws(
    model: Any, spec: StudentSpec, ds: Any, counts_np: np.ndarray, definition: str
) -> dict[str, Any]:
    """SSD stage IV: LWS (class-balanced, on clean training features) on the hard head;
    the hard head's test metrics with that scale and the scale itself."""
    from softlabels.calibration import Classifier, fit_lws
    from softlabels.metrics import evaluate_logits

    device = next(model.parameters()).device
    model.eval()

    def feats(split: str) -> torch.Tensor:
        part = ds.split(split)
        out = []
        with torch.inference_mode():
            for start in range(0, len(part), 512):
                rows = np.arange(start, min(len(part), start + 512))
                out.append(model.features(ds.clean(part.load(rows).to(device))).float())
        return torch.cat(out)

    head = Classifier(
        model.hard_head.weight.detach().float(), model.hard_head.bias.detach().float()
    )
    fit = fit_lws(
        feats("train"), torch.as_tensor(ds.train.labels, device=device), head, seed=spec.seed
    )
    with torch.inference_mode():
        logits = fit.classifier.to(device)(feats("test")).float().cpu().numpy()
    m = evaluate_logits(logits, ds.test.labels, counts_np, groups=definition)
    scale = fit.classifier.lws_scale
    return {
        "top1": m["top1"],
        "ece": m["ece"],
        **{k: v for k, v in m["groups"].items() if k != "definition"},
        "lws_scale": [] if scale is None else [float(x) for x in scale.detach().cpu()],
    }


def _evaluate_teachers(
    cache: Any, names: list[str], ds: Any, counts_np: np.ndarray, definition: str, dev: torch.device
) -> list[dict[str, Any]]:
    """Test metrics of the teachers whose model files are still at hand (else marked so)."""
    from softlabels.errors import SoftlabelsError
    from softlabels.evaluation import model_logits
    from softlabels.metrics import evaluate_logits
    from softlabels.models import load_model

    out = []
    for name in names:
        info = cache.teacher(name).info
        spec = info.get("model")
        calibrated = bool(info.get("calibration"))
        entry: dict[str, Any] = {"name": name, "model": spec}
        try:
            lm = load_model(
                str(spec), num_classes=ds.num_classes, device=str(dev), with_features=calibrated
            )
            head = None
            if calibrated:  # the backbone's features through the calibrated final layer
                from softlabels.calibration import stored_classifier

                head = stored_classifier(cache, name).to(dev)
        except SoftlabelsError:
            entry["status"] = "model not available"
            out.append(entry)
            continue
        logits = model_logits(lm, ds, "test", device=dev, head=head)
        m = evaluate_logits(logits, ds.test.labels, counts_np, groups=definition)
        entry.update(
            {"status": "ok", "top1": m["top1"], "ece": m["ece"], "per_class": m["per_class"]}
        )
        entry.update({k: v for k, v in m["groups"].items() if k != "definition"})
        out.append(entry)
    return out
