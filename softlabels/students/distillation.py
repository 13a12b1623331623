"""``softlabels distill``: many students from one cache, in as few passes as possible.

Students that share sampler, batch size, data seed and view mode share one pass: each
batch is loaded and augmented once and fed to all of them. Each keeps its own model,
optimiser, schedule, method and init seed, so it ends exactly as if trained alone.
What a student's method needs and does comes from its record
(:mod:`softlabels.students.methods`); nothing here asks which method it is.

Under torchrun every rank trains every student with DistributedDataParallel on its slice
of each global batch (see :mod:`softlabels.engine.inputs`) and gathers only its rows of the
teacher targets; rank 0 decides resumption (and sends the state), evaluates, and writes
checkpoints, metrics and the summary; every rank returns rank 0's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from softlabels.caches import check_recipe as _check_recipe
from softlabels.errors import UsageError
from softlabels.students._run import DistillResult, Session, StudentRun
from softlabels.students.methods import Method, get_method
from softlabels.students.plan import StudentSpec
from softlabels.students.steps import resolve_hparams

__all__ = ["SHUFFLES", "DistillResult", "distill"]

SHUFFLES = ("auto", "full", "chunks")  # the row order of students reading cached targets


def _teacher_of(spec: StudentSpec, method: Method, cache: Any) -> str | None:
    """The logit teacher of a student (None for methods without one), checked against the cache."""
    names = cache.teacher_names
    if spec.teacher is not None and spec.teacher not in names:
        raise UsageError(
            f"student {spec.name!r} asks for teacher {spec.teacher!r}; the cache has {', '.join(names)}"
        )
    if method.teacher == "optional":
        return spec.teacher
    if method.teacher == "none":
        return None
    if spec.teacher is not None:
        name = spec.teacher
    elif len(names) == 1:
        name = names[0]
    else:
        raise UsageError(
            f"student {spec.name!r} (method {spec.method}) needs teacher = one of {', '.join(names)}"
        )
    if method.calibrated_teacher and not cache.teacher(name).info.calibration:
        raise UsageError(
            f"student {spec.name!r} ({spec.method}) needs a calibrated teacher; run `softlabels "
            f'calibrate CACHE --teacher {name} --method lws` and use teacher = "{name}+lws"'
        )
    return name


def _feature_teachers(
    spec: StudentSpec, method: Method, hp: dict[str, Any], cache: Any
) -> tuple[str, ...]:
    """K feature teachers: the listed ones, the student's teacher, or all with features."""
    if not method.feature_teachers:
        return ()
    listed = hp.get("teachers")
    if listed:
        names = list(listed)
    elif spec.teacher:
        names = [spec.teacher]
    else:
        names = [t for t in cache.teacher_names if cache.teacher(t).info.features]
    if not names:
        raise UsageError(
            f"student {spec.name!r} ({spec.method}) needs cached teacher features; dump without --no-features"
        )
    for name in names:
        if name not in cache.teacher_names:
            raise UsageError(
                f"student {spec.name!r} asks for teacher {name!r}; the cache has {', '.join(cache.teacher_names)}"
            )
        if not cache.teacher(name).info.features:
            raise UsageError(
                f"student {spec.name!r} ({spec.method}) needs the features of teacher {name!r}, "
                "which were not cached; dump it without --no-features"
            )
    return tuple(names)


def _view_mode(spec: StudentSpec, cache_mode: str) -> str:
    if spec.online:
        return "online"
    if spec.views == "replay" and cache_mode != "augmented":
        raise UsageError(
            f"student {spec.name!r} asks for replayed views, but the cache holds clean outputs only (dump with --views K)"
        )
    if spec.views == "own" or cache_mode != "augmented":
        return "own"
    return "replay"


def _replay_views(spec: StudentSpec, cache: Any) -> int:
    views = int(cache.num_views)
    if spec.replay_views is not None and spec.replay_views > views:
        raise UsageError(
            f"student {spec.name!r} asks for replay_views = {spec.replay_views}, but the cache "
            f"holds {views} view(s) per sample"
        )
    return spec.replay_views or views


def _plan_runs(specs: list[StudentSpec], cache: Any) -> list[StudentRun]:
    cache_mode = cache.views.mode
    # Caches made before epoch-aligned views hold views indexed by nothing in particular.
    cache_schedule = cache.views.schedule or "random"
    runs = []
    for spec in specs:
        method = get_method(spec.method)
        teacher = _teacher_of(spec, method, cache)
        key = teacher or "+".join(spec.options.get("teachers") or ())
        choice = cache.tune_tau_for(key) if key else None
        hp = resolve_hparams(spec, choice, known=cache.tune_tau_teachers)
        runs.append(
            StudentRun(
                spec=spec,
                method=method,
                hparams=hp,
                teacher=teacher,
                feature_teachers=_feature_teachers(spec, method, hp, cache),
                views=_view_mode(spec, cache_mode),
                schedule=cache_schedule if spec.view_schedule == "auto" else spec.view_schedule,
                replay_views=_replay_views(spec, cache),
                # Replayed and online students see the cache's mixed views; "own" ones not.
                mixed_views=cache.mixing is not None and _view_mode(spec, cache_mode) != "own",
            )
        )
    return runs


def _used_teachers(runs: list[StudentRun], cache: Any) -> dict[str, bool]:
    """Every teacher whose cached outputs some student reads (name -> with its features)."""
    runs = [r for r in runs if r.views != "online"]
    with_features = {t for r in runs for t in r.feature_teachers}
    with_features |= {
        r.teacher
        for r in runs
        if r.method.teacher_features and r.teacher and cache.teacher(r.teacher).info.features
    }
    used = sorted({r.teacher for r in runs if r.teacher} | with_features)
    for t in used:
        cache.require_complete(t)
    return {t: t in with_features for t in used}


def _reads_cache(run: StudentRun) -> bool:
    return run.views != "online" and bool(run.teacher or run.feature_teachers)


def _load_teacher_targets(
    used: dict[str, bool], cache: Any, dev: torch.device, plan: Any
) -> dict[str, Any]:
    """Every used teacher's cached outputs: on the device (checksums verified, read once),
    or streamed chunk by chunk when ``plan`` says they exceed the budget."""
    from softlabels.students.streaming import StreamedTargets
    from softlabels.students.targets import load_targets

    if plan is not None:
        return {
            t: StreamedTargets(cache, t, dev, features=f, prefetch=plan.prefetch)
            for t, f in used.items()
        }
    return {t: load_targets(cache, t, dev, features=f) for t, f in used.items()}


def _chunk_buffer(
    runs: list[StudentRun], plan: Any, shuffle: str, shuffle_buffer: int | None, budget: Any
) -> int | None:
    """The shuffle buffer (chunks) of the chunk-shuffled order, None for the full order."""
    from softlabels.students.streaming import DEFAULT_BUFFER

    if shuffle not in SHUFFLES:
        raise UsageError(f"Expected shuffle among {', '.join(SHUFFLES)}, got {shuffle!r}")
    if shuffle_buffer is not None and shuffle_buffer < 1:
        raise UsageError(f"Expected --shuffle-buffer >= 1 chunk, got {shuffle_buffer}")
    if plan is None and shuffle != "chunks":
        return None
    if plan is not None and shuffle == "full":
        raise UsageError(
            f"Expected --shuffle chunks or auto: the teacher targets "
            f"({plan.total_bytes / 1e9:.3g} GB) exceed --target-memory {budget} and are streamed"
        )
    for r in runs:
        if _reads_cache(r) and r.spec.sampler_name != "instance":
            why = (
                f"the teacher targets ({plan.total_bytes / 1e9:.3g} GB) exceed "
                f"--target-memory {budget} and are streamed in chunks"
                if plan is not None
                else "--shuffle chunks visits rows chunk by chunk"
            )
            raise UsageError(
                f"Expected sampler instance for student {r.spec.name!r}, got "
                f"{r.spec.sampler_name}: {why}; raise --target-memory or set sampler = "
                '"instance"'
            )
    return plan.buffer if plan is not None else (shuffle_buffer or DEFAULT_BUFFER)


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
    teacher_models: dict[str, str] | None = None,
    target_memory: str | int | None = None,
    shuffle: str = "auto",
    shuffle_buffer: int | None = None,
    prefetch: int | None = None,
) -> DistillResult:
    """Train ``specs`` from the cache at ``cache_url`` on ``dataset``; outputs go to ``out``.

    Students with ``online = true`` get their teacher's outputs from the teacher model run
    on their own inputs (the model recorded by the dump, or ``teacher_models[name]``).

    ``target_memory`` (bytes, ``"2GB"``, ``"auto"``; None: no limit) bounds the memory of
    the cached teacher targets: when they exceed it they are streamed chunk by chunk
    (:mod:`softlabels.students.streaming`) and the students that read them visit rows in
    the chunk-shuffled order (:class:`~softlabels.engine.chunk_sampler.ChunkSampler`,
    ``shuffle_buffer`` chunks per window: as many as fit unless given; ``prefetch``
    chunks read ahead). ``shuffle = "chunks"`` uses that order with targets in memory too,
    ``"full"`` refuses to stream, ``"auto"`` streams (and chunk-shuffles) only when needed.
    """
    from softlabels import distributed
    from softlabels.caches import check_dataset, open_cache
    from softlabels.data import load_dataset
    from softlabels.metrics import group_definition
    from softlabels.students.memory import parse_size
    from softlabels.students.online import load_online_teacher
    from softlabels.students.streaming import DEFAULT_PREFETCH, plan_stream

    t0 = time.perf_counter()
    if not specs:
        raise UsageError("Expected at least one student")
    if eval_every < 1:
        raise UsageError(f"Expected --eval-every >= 1, got {eval_every}")
    budget = parse_size(target_memory)
    if prefetch is not None and prefetch < 1:
        raise UsageError(f"Expected --prefetch >= 1 chunk, got {prefetch}")
    distributed.check_shared_url(cache_url)
    ctx = distributed.setup(device)
    if not ctx.is_main:
        progress = None
    cache = open_cache(cache_url)
    ds = load_dataset(dataset)
    if (cache.dataset.split or "train") != "train":
        raise UsageError(
            f"cache {cache.url} holds the {cache.dataset.split} split; distill needs a train-split cache"
        )
    check_dataset(cache, ds, "train")
    out = Path(out)
    if ctx.is_main:  # the only rank that writes into the run folder
        out.mkdir(parents=True, exist_ok=True)
    runs = _plan_runs(specs, cache)
    if any(r.views == "replay" for r in runs):
        _check_recipe(cache, ds)
    cache.check_mix_rule()  # online students draw the mixes by this version's rule
    used = _used_teachers(runs, cache)
    plan = plan_stream(
        cache,
        used,
        budget,
        buffer=shuffle_buffer,
        prefetch=DEFAULT_PREFETCH if prefetch is None else prefetch,
    )
    buffer = _chunk_buffer(runs, plan, shuffle, shuffle_buffer, target_memory)
    targets = _load_teacher_targets(used, cache, ctx.device, plan)
    online = {
        t: load_online_teacher(cache, t, ds, ctx.device, (teacher_models or {}).get(t))
        for t in sorted(
            {r.teacher for r in runs if r.views == "online" and r.teacher}
            | {t for r in runs if r.views == "online" for t in r.feature_teachers}
        )
    }
    replay = any(r.views == "replay" for r in runs)
    session = Session(
        ds=ds,
        cache=cache,
        out=out,
        ctx=ctx,
        counts=ds.class_counts("train"),
        definition=group_definition(ds.class_counts("train")),
        targets=targets,
        cached_seeds=cache.read_view_seeds() if replay else None,
        cached_mix=cache.read_mix() if replay else None,
        strength=cache.views.strength or "standard",
        workers=workers,
        online=online,
    )
    groups: dict[tuple[Any, ...], list[StudentRun]] = {}
    for r in runs:
        key = (
            r.spec.sampler_name,
            r.spec.batch_size,
            r.spec.stream_seed,
            r.views,
            r.schedule,
            r.replay_views,
            buffer if _reads_cache(r) else None,
        )
        groups.setdefault(key, []).append(r)
    trained: list[Any] = []
    for key, members in groups.items():
        trained.extend(_train_group(session, key, members, trained, eval_every, progress))

    if ctx.distributed and not ctx.is_main:
        return DistillResult(**distributed.broadcast_json(None))
    from softlabels.students.summary import finish

    result = finish(session, runs, trained, t0, len(groups), plots, evaluate_teachers)
    if ctx.distributed:
        distributed.broadcast_json(result.to_dict())
    return result


def _evaluate_fn(session: Session, method: Method) -> Callable[[torch.nn.Module], dict[str, Any]]:
    from softlabels.engine.inputs import predict
    from softlabels.metrics import evaluate_logits

    def metrics_of(model: torch.nn.Module, forward: Any = None) -> dict[str, Any]:
        logits = predict(model, session.ds, "test", device=session.device, forward=forward)
        return evaluate_logits(
            logits, session.ds.test.labels, session.counts, groups=session.definition
        )

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        metrics = metrics_of(model)
        if method.evaluate is not None:
            metrics.update(method.evaluate(model, metrics_of))
        return metrics

    return evaluate


def _student(session: Session, run: StudentRun, buffer: int | None = None) -> Any:
    from softlabels import distributed
    from softlabels.engine.loop import Student
    from softlabels.engine.optim import OptimConfig
    from softlabels.students.methods import ModelRequest
    from softlabels.students.steps import make_step

    spec, ds = run.spec, session.ds
    request = ModelRequest(
        model=spec.model,
        classifier=spec.classifier,
        num_classes=ds.num_classes,
        input_shape=tuple(int(d) for d in ds.input_shape),
        seed=spec.seed,
        options=run.hparams,
        feature_dim=sum(
            int(session.cache.teacher(t).info.feature_dim or 0) for t in run.feature_teachers
        ),
    )
    model = run.method.model(request).to(session.device)
    source = session.online if run.views == "online" else session.targets
    step = make_step(
        spec,
        run.hparams,
        torch.as_tensor(session.counts, device=session.device),
        source.get(run.teacher) if run.teacher else None,
        [source[t] for t in run.feature_teachers],
    )
    student = Student(
        name=spec.name,
        model=model,
        optim=OptimConfig(
            optimizer=spec.optimizer,
            lr=spec.lr,
            momentum=spec.momentum,
            nesterov=spec.nesterov,
            weight_decay=spec.weight_decay,
            schedule=spec.schedule,
            warmup_epochs=spec.warmup_epochs,
        ),
        epochs=spec.epochs,
        step_fn=step,
        evaluate_fn=_evaluate_fn(session, run.method),
        out_dir=session.out / spec.name,
        config={
            "spec": spec.to_dict(),
            "hparams": run.hparams,
            "teacher": run.teacher,
            "feature_teachers": list(run.feature_teachers),
            "sampler": spec.sampler_name,
            "views": run.views,
            "view_schedule": run.schedule if run.views == "replay" else None,
            "replay_views": run.replay_views if run.views == "replay" else None,
            **run.record,
            **({"order": {"shuffle": "chunks", "buffer": buffer}} if buffer else {}),
            "cache": {"url": session.cache.url, "config_key": session.cache.config_key},
            "dataset": ds.spec,
            "fingerprint": ds.train.fingerprint(),
        },
    )
    if session.ctx.distributed:
        # Rank 0's saved state (if any) on every rank: the run folder need not be shared.
        state = distributed.broadcast_state(student.read_state() if session.ctx.is_main else None)
        if state is not None:
            student.load_state(state)
    else:
        student.try_resume()
    return student


def _train_group(
    session: Session,
    key: tuple[Any, ...],
    members: list[StudentRun],
    done: list[Any],
    eval_every: int,
    progress: Callable[[dict[str, Any]], None] | None,
) -> list[Any]:
    """Train the students of one shared pass; returns their trained ``Student``s."""
    from softlabels.engine.chunk_sampler import ChunkSampler
    from softlabels.engine.inputs import BatchStream
    from softlabels.engine.loop import fit
    from softlabels.engine.samplers import make_sampler
    from softlabels.students.summary import write_metrics

    sampler_name, batch_size, seed, mode, schedule, replay_views, buffer = key
    students = [_student(session, r, buffer) for r in members]
    labels = session.ds.train.labels
    sampler: Any = make_sampler(sampler_name, labels, session.ds.num_classes, seed)
    if buffer is not None:
        sampler = ChunkSampler(len(labels), int(session.cache.chunk_size), buffer, seed)
    names = sorted({n for r in members for n in _teachers_of(r)})
    streamed = [session.targets[n] for n in names if getattr(session.targets[n], "streamed", False)]
    for t in streamed:
        t.bind(sampler)
    stream = BatchStream(
        session.ds,
        sampler,
        batch_size=batch_size,
        device=session.device,
        augment=session.ds.recipe.get("kind") != "none",
        # An online student sees fresh views of the cache's recipe; "own" ones the standard.
        strength=session.strength if mode in ("replay", "online") else "standard",
        seed=seed,
        workers=session.workers,
        cached_views=(
            session.cached_seeds[:, :replay_views]
            if mode == "replay" and session.cached_seeds is not None
            else None
        ),
        schedule=schedule,
        rank=session.ctx.rank,
        world=session.ctx.world,
        mixing=session.cache.mixing if mode in ("replay", "online") else None,
        cached_mix=session.cached_mix if mode == "replay" else None,
    )
    before = list(done)

    def on_epoch_end(_s: Any) -> None:
        if session.ctx.is_main:  # metrics.parquet is current after every epoch
            write_metrics(session.out, before + students)

    try:
        fit(students, stream, eval_every=eval_every, progress=progress, on_epoch_end=on_epoch_end)
    finally:
        for t in streamed:
            t.close()
    return students


def _teachers_of(run: StudentRun) -> list[str]:
    """The teachers whose cached outputs a student reads."""
    if not _reads_cache(run):
        return []
    return [t for t in (run.teacher, *run.feature_teachers) if t]
