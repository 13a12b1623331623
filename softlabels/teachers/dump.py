"""``softlabels dump``: run teachers once over a dataset and commit their outputs to a cache.

Chunks are the unit of work and of commitment. Inside a chunk, batches always start at the
chunk's first row, so a chunk's bytes do not depend on whether the dump was resumed; a
resumed dump skips committed chunks and rewrites the rest. Commits run in one writer
thread, in order, from a bounded queue (a few chunks, see ``COMMIT_QUEUE_*``): writing
overlaps computing the next chunks, and so does creating the cache's arrays, tables and
static arrays, the first job of that thread. A file-backed split's input batches are
loaded ahead by loader threads, across chunk boundaries; an in-memory split is indexed in
place. Outputs are cast by torch straight into the chunk arrays.

Under ``torchrun`` every rank runs the teachers on its own share of the pending chunks
(every world-th one) of the same cache: rank 0 creates or resumes the cache, holds its lock
and writes the metadata, tables and static arrays; the others attach to it; each rank
commits its own chunks' manifest records. Since a chunk's bytes depend only on its rows, the
cache is the same, byte for byte, as one process would write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from softlabels.errors import SoftlabelsError, StorageError, UsageError
from softlabels.nonfinite import nonfinite_error, nonfinite_rows
from softlabels.stores import schema
from softlabels.stores import topk as sparse
from softlabels.stores._codec import COMPRESSORS

__all__ = ["DumpConfig", "DumpResult", "TeacherSpec", "dump", "parse_teacher"]

# Bump when the bytes a dump writes for the same inputs change: stops resuming old caches.
# 2: the view schedule (epoch-aligned view seeds by default).
DUMP_ALGORITHM = 2
SCHEDULES = ("epoch", "random")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DTYPES = ("float16", "float32")

Progress = Callable[[int, int], None]

# How far computing may run ahead of committing: chunks queued for the commit thread, and
# their bytes beyond the first (the memory of a dump is about this plus one chunk).
COMMIT_QUEUE_CHUNKS = 8
COMMIT_QUEUE_BYTES = 256 << 20
# A sparse teacher's rest profile (stores/topk.py) is fitted on chunks spread evenly over
# the split, computed first and held until it is stored: at most this many bytes of them
# (every chunk when the split's outputs fit).
PROFILE_FIT_BYTES = 256 << 20


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher of a dump: the name it gets in the cache and the model spec to load."""

    name: str
    model: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise UsageError(
                f"Expected a teacher name of letters, digits, '_', '.', '-', got {self.name!r}"
            )
        if not self.model:
            raise UsageError(f"Expected a model spec for teacher {self.name!r}, got nothing")


def parse_teacher(text: str) -> TeacherSpec:
    """``NAME=MODEL`` -> TeacherSpec."""
    name, sep, model = text.partition("=")
    if not sep:
        raise UsageError(f"Expected --teacher NAME=MODEL, got {text!r}")
    return TeacherSpec(name.strip(), model.strip())


@dataclass(frozen=True)
class DumpConfig:
    """Everything that determines the bytes of a cache (plus how to compute them)."""

    dataset: str
    teachers: tuple[TeacherSpec, ...]
    views: int = 0
    features: bool = True
    dtype: str = "float16"
    chunk_size: int = 1024
    batch_size: int = 256
    seed: int = 0
    split: str = "train"
    strength: str = "standard"
    compressor: str = "zstd"
    schedule: str = "epoch"  # epoch: view v = epoch v of an online run; random: hashed seeds
    topk: int | None = None  # store the K largest logits per view (sparse), not all C
    # Mixed views (METHODS §13): Beta(a, a) of Mixup and of CutMix, probability of a mix.
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 0.0

    def __post_init__(self) -> None:
        if not self.teachers:
            raise UsageError("Expected at least one --teacher NAME=MODEL, got none")
        names = [t.name for t in self.teachers]
        if len(set(names)) != len(names):
            raise UsageError(f"Expected distinct teacher names, got {names}")
        if self.views < 0:
            raise UsageError(f"Expected --views >= 0, got {self.views}")
        if self.dtype not in DTYPES:
            held = " (top-k values are stored in the cache's dtype)" if self.topk else ""
            raise UsageError(f"Expected --dtype float16 or float32{held}, got {self.dtype!r}")
        if self.topk is not None and (
            not isinstance(self.topk, int) or isinstance(self.topk, bool) or self.topk < 1
        ):
            raise UsageError(f"Expected --topk K >= 1, got {self.topk!r}")
        if self.chunk_size < 1:
            raise UsageError(f"Expected --chunk-size >= 1, got {self.chunk_size}")
        if self.batch_size < 1:
            raise UsageError(f"Expected --batch-size >= 1, got {self.batch_size}")
        if self.split not in ("train", "test"):
            raise UsageError(f"Expected --split train or test, got {self.split!r}")
        if self.strength not in ("standard", "strong"):
            raise UsageError(f"Expected --strength standard or strong, got {self.strength!r}")
        if self.compressor not in COMPRESSORS:
            raise UsageError(f"Expected --compressor zstd, blosc or none, got {self.compressor!r}")
        if self.seed < 0:
            raise UsageError(f"Expected --seed >= 0, got {self.seed}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"Expected --schedule epoch or random, got {self.schedule!r}")
        if self.mixing is not None and self.views == 0:
            raise UsageError(
                "Expected --views K >= 1 with --mixup/--cutmix (mixed views are augmented "
                "views), got --views 0"
            )

    @property
    def mixing(self) -> schema.MixingInfo | None:
        """The recipe of the mixed views (None: no view is mixed); checks the flags."""
        from softlabels.data.mixing import mixing_info

        return mixing_info(self.mixup, self.cutmix, self.mix_prob)

    @property
    def num_views(self) -> int:
        return max(1, self.views)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["teachers"] = [{"name": t.name, "model": t.model} for t in self.teachers]
        return d


@dataclass
class DumpResult:
    url: str
    status: str  # "created", "resumed" or "complete" (nothing to do)
    num_samples: int
    num_classes: int
    num_views: int
    teachers: list[str]
    chunks_total: int
    chunks_written: int
    seconds: float
    bytes_on_disk: int
    fingerprint: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_identity(spec: str) -> str:
    """What makes a model spec's weights unique: file hashes where there are files."""
    candidates = []
    if spec.startswith(("ts:", "tv:")):
        rest = spec[3:]
        candidates = [rest.split("@", 1)[1]] if "@" in rest else [rest]
    elif not spec.startswith("py:"):
        candidates = [spec, os.path.join(spec, "model.pt")]
    for path in candidates:
        if os.path.isfile(path):
            return f"{spec}#sha256={_file_sha256(path)}"
    return spec


def _batches(start: int, stop: int, size: int) -> Iterator[np.ndarray]:
    for b in range(start, stop, size):
        yield np.arange(b, min(stop, b + size), dtype=np.int64)


def dump(
    config: DumpConfig,
    out: str,
    *,
    device: str = "auto",
    overwrite: bool = False,
    break_lock: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DumpResult:
    """Run every teacher of ``config`` over the dataset split and write (or finish) the cache.

    ``workers``: threads that load a file-backed split's input batches ahead
    (:func:`default_workers` when None); an in-memory split is indexed in place."""
    import softlabels
    from softlabels.data import load_dataset, view_seeds
    from softlabels.engine.inputs import epoch_aligned_seeds
    from softlabels.metrics import shot_groups
    from softlabels.models import load_model
    from softlabels.stores.writer import ArraySpec

    t0 = time.perf_counter()
    ctx = _distributed_setup(device, out)
    dev = ctx.device
    ds = load_dataset(config.dataset)
    split = ds.split(config.split)
    n, c, v = len(split), ds.num_classes, config.num_views
    if config.topk is not None:
        sparse.check_k(config.topk, c)
    if config.views > 0 and ds.recipe.get("kind") == "none":
        raise UsageError(
            f"dataset {ds.spec} has no augmentation recipe, so augmented views would all be the "
            "clean input; use --views 0"
        )

    # Teachers: load, probe output and feature sizes on one batch.
    probe = ds.clean(split.load(np.arange(min(2, n)))).to(dev)
    models: dict[str, Any] = {}
    tinfo: dict[str, schema.TeacherInfo] = {}
    for i, t in enumerate(config.teachers):
        lm = load_model(
            t.model,
            num_classes=c,
            in_channels=int(probe.shape[1]),
            device=str(dev),
            with_features=config.features,
        )
        try:
            with torch.inference_mode():
                logits, feats = lm.forward(probe)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"teacher {t.name!r} ({t.model}) cannot run on this dataset's inputs of shape "
                f"{tuple(probe.shape[1:])}: {first[:200]}"
            ) from None
        if logits.shape[-1] != c:
            raise UsageError(
                f"teacher {t.name!r} ({t.model}) outputs {logits.shape[-1]} classes, the dataset has {c}"
            )
        want_feats = config.features and feats is not None
        cls_w = lm.classifier() if want_feats else None
        tinfo[t.name] = schema.TeacherInfo(
            order=i,
            model=t.model,
            model_id=model_identity(t.model),
            arch=lm.arch,
            dtype=config.dtype,
            features=bool(want_feats),
            feature_dim=int(feats.shape[-1]) if want_feats else None,
            classifier=cls_w is not None,
            classifier_kind=lm.arch.get("classifier", "linear"),
            cosine_scale=lm.arch.get("cosine_scale"),
            calibration=None,
            storage="dense" if config.topk is None else "topk",
            topk=None if config.topk is None else sparse.topk_info(config.topk, c),
        )
        models[t.name] = (lm, cls_w)

    mixing = config.mixing
    views = schema.ViewsInfo(
        mode="clean" if config.views == 0 else "augmented",
        count=config.views,
        seed=config.seed,
        strength=config.strength if config.views else None,
        recipe=ds.recipe,
        schedule=config.schedule if config.views else None,
        mixing=mixing,
    )
    cfg = config.to_dict()
    key_doc = {
        "config": {
            k: cfg[k]
            for k in (
                "dataset",
                "views",
                "features",
                "dtype",
                "chunk_size",
                "batch_size",  # CPU kernels give other bits for other batch shapes
                "seed",
                "split",
                "strength",
                "compressor",
                "schedule",
                # Only when set: a dense dump keeps the key (and so resumes) it always had.
                *(("topk",) if config.topk is not None else ()),
                *(("mixup", "cutmix", "mix_prob") if config.mixing is not None else ()),
            )
        },
        "teachers": {k: v_.model_id for k, v_ in tinfo.items()},
        "fingerprint": split.fingerprint(),
        "format": schema.format_for(tinfo, views),
        "algorithm": DUMP_ALGORITHM,
    }
    if mixing is not None:  # the rule decides the bytes of views/{partner,lam,box}
        key_doc["mix_rule"] = [mixing.rule, mixing.rule_version]
    if config.topk is not None:  # the rule decides the bytes of topk/rest and topk/error
        key_doc["topk_rule"] = [sparse.RULE, sparse.RULE_VERSION]
    config_key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()
    counts = ds.class_counts("train")
    meta = schema.CacheMeta(
        format=schema.format_for(tinfo, views),
        N=n,
        C=c,
        V=v,
        chunk_size=config.chunk_size,
        config_key=config_key,
        config={k: cfg[k] for k in key_doc["config"]} | {"teachers": cfg["teachers"]},
        dataset=schema.DatasetInfo(
            spec=ds.spec,
            name=ds.name,
            split=config.split,
            fingerprint=split.fingerprint(),
            family=ds.family,
            recipe=ds.recipe,
            train_counts=[int(x) for x in counts],
        ),
        class_names=list(ds.class_names),
        teachers=tinfo,
        views=views,
        created={"softlabels": softlabels.__version__, "torch": torch.__version__.split("+")[0]},
        tune_tau=None,
    )
    specs = [
        ArraySpec(schema.LABELS, (n,), "int32"),
        ArraySpec(schema.VIEW_SEEDS, (n, v), "uint64"),
    ]
    if mixing is not None:
        specs += [
            ArraySpec(schema.MIX_PARTNER, (n, v), "int32"),
            ArraySpec(schema.MIX_LAM, (n, v), "float32"),
            ArraySpec(schema.MIX_BOX, (n, v, 4), "int32"),
        ]
    for name, info in tinfo.items():
        if info.topk is None:
            path = schema.teacher_array(name, schema.LOGITS)
            specs.append(ArraySpec(path, (n, v, c), config.dtype))
        else:
            specs.extend(_topk_specs(name, info.topk, n, v, c, config))
        if info.features:
            d = info.feature_dim
            path = schema.teacher_array(name, schema.FEATURES)
            specs.append(ArraySpec(path, (n, v, d), config.dtype))
        if info.classifier:
            specs.append(
                ArraySpec(
                    schema.teacher_array(name, schema.CLASSIFIER_WEIGHT),
                    (c, info.feature_dim),
                    "float32",
                    by_row=False,
                )
            )
            specs.append(
                ArraySpec(
                    schema.teacher_array(name, schema.CLASSIFIER_BIAS),
                    (c,),
                    "float32",
                    by_row=False,
                )
            )
    tables = {
        schema.SAMPLES_TABLE: schema.samples_table(split.ids, split.labels, config.split),
        schema.CLASSES_TABLE: schema.classes_table(
            ds.class_names, counts, shot_groups(counts).tolist()
        ),
    }

    try:
        job = _Job(
            config=config,
            ds=ds,
            split=split,
            models=models,
            tinfo=tinfo,
            dev=dev,
            view_seeds=epoch_aligned_seeds if config.schedule == "epoch" else view_seeds,
        )
        return _write_cache(
            job, out, meta, specs, tables, overwrite, break_lock,
            default_workers() if workers is None else workers, progress, t0, ctx,
        )  # fmt: skip
    except OSError as exc:
        if isinstance(exc, SoftlabelsError):
            raise
        what = exc.strerror or str(exc) or type(exc).__name__
        raise StorageError(
            f"writing the cache {out} failed: {what}; every chunk committed before is kept; "
            "fix the storage (free space, permissions) and rerun the same command to resume"
        ) from exc


@dataclass(frozen=True)
class _Job:
    """What computing a chunk needs: the settings, the dataset split, the loaded teachers."""

    config: DumpConfig
    ds: Any  # the dataset
    split: Any  # its split being dumped
    models: dict[str, Any]  # (loaded model, classifier weights or None) by teacher name
    tinfo: dict[str, Any]  # TeacherInfo by teacher name
    dev: torch.device
    view_seeds: Callable[..., np.ndarray]  # the schedule's view seeds (seed, rows, V)


def default_workers() -> int:
    """Loader threads of a dump by default: 2, or 1 on a machine with fewer than 4 cores (the
    teacher and the commit thread already take two; a second loader then only contends,
    measured in benchmarks/RESULTS.md "dump overhead")."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 if (cores or 1) >= 4 else 1


def _topk_specs(
    name: str, info: schema.TopKInfo, n: int, v: int, c: int, config: DumpConfig
) -> list[Any]:
    """The arrays of a sparse teacher: top-k values, ids, rest statistics; the error per
    chunk; the rest profile."""
    from softlabels.stores.writer import ArraySpec

    k, chunks = info.k, -(-n // config.chunk_size)
    return [
        ArraySpec(schema.teacher_array(name, schema.TOPK_VALUES), (n, v, k), config.dtype),
        ArraySpec(schema.teacher_array(name, schema.TOPK_INDICES), (n, v, k), info.index_dtype),
        ArraySpec(schema.teacher_array(name, schema.TOPK_REST), (n, v, len(info.rest)), "float32"),
        ArraySpec(
            schema.teacher_array(name, schema.TOPK_ERROR),
            (chunks, len(info.error_columns)),
            "float32",
            per_chunk=True,
        ),
        ArraySpec(
            schema.teacher_array(name, schema.TOPK_PROFILE),
            (c if info.profile == "label" else 1, c),
            "float32",
            by_row=False,
        ),
    ]


def _distributed_setup(device: str, out: str) -> Any:
    """The device, and under torchrun the process group (one rank per chunk share)."""
    from softlabels import distributed

    distributed.check_shared_url(out)
    return distributed.setup(device)


def _write_cache(
    job: _Job,
    out: str,
    meta: Any,  # CacheMeta
    specs: list[Any],
    tables: dict[str, Any],
    overwrite: bool,
    break_lock: bool,
    workers: int,
    progress: Progress | None,
    t0: float,
    ctx: Any,
) -> DumpResult:
    """Open (rank 0: create or resume, holding the lock) or attach to the cache, commit this
    rank's share of the pending chunks, and report (every rank returns rank 0's result)."""
    from softlabels import distributed
    from softlabels.stores.writer import CacheWriter

    config, models, tinfo, split, dev = job.config, job.models, job.tinfo, job.split, job.dev
    n, c, v = meta.N, meta.C, meta.V
    statics = {
        schema.teacher_array(name, what): arr.detach().float().cpu().numpy()
        for name, (_lm, cls_w) in models.items()
        if cls_w is not None
        for what, arr in zip((schema.CLASSIFIER_WEIGHT, schema.CLASSIFIER_BIAS), cls_w, strict=True)
    }
    writer: CacheWriter | None = None
    setup: dict[str, Any] = {}
    profiles: _Profiles | None = None
    ready: dict[int, dict[str, np.ndarray]] = {}
    try:
        if ctx.is_main:
            try:
                # One process: the arrays, tables and static arrays are written by the commit
                # thread while the first chunk is computed (see _commit_chunks). Under
                # torchrun the other ranks attach to a complete layout, so rank 0 writes it now.
                writer = CacheWriter.open(
                    out,
                    meta=meta,
                    specs=specs,
                    tables=tables,
                    overwrite=overwrite,
                    break_lock=break_lock,
                    compressor=config.compressor,
                    prepare=ctx.distributed,
                )
                profiles, ready = _fit_profiles(writer, out, job, statics, workers)
                if ctx.distributed:
                    _write_layout(writer, statics)
                    for chunk, data in ready.items():  # the chunks the profiles came from
                        _encode_and_write(writer, chunk, data, job, profiles)
                setup = {
                    "pending": writer.pending_chunks(),
                    "num_chunks": writer.num_chunks,
                    "precommitted": len(ready) if ctx.distributed else 0,
                }
                if ctx.distributed:
                    ready = {}
            except BaseException as exc:
                # The other ranks wait for this: tell them, so they stop with the same error.
                if ctx.distributed:
                    distributed.broadcast_json({"error": _error_doc(exc)})
                raise
        if ctx.distributed:
            setup = distributed.broadcast_json(setup)
            if "error" in setup:
                raise _error_from(setup["error"])
            if not ctx.is_main:
                writer = CacheWriter.attach(out, meta=meta, specs=specs)
        assert writer is not None
        if profiles is None:  # a rank that attached: rank 0 stored the profiles
            profiles = _stored_profiles(out, tinfo, split)
        pending = [int(ch) for ch in setup["pending"]]
        num_chunks = int(setup["num_chunks"])
        written = len(pending) + int(setup.get("precommitted", 0))
        status = "created" if written == num_chunks else ("resumed" if written else "complete")
        # Ranks take every world-th pending chunk: disjoint, and balanced on a resume too
        # (a crashed rank's chunks are spread over all ranks, not left to one).
        mine = pending[ctx.rank :: ctx.world]
        share = sum(writer.rows(ch)[1] - writer.rows(ch)[0] for ch in mine)
        # Progress counts rows of the whole cache (one process) or of this rank's share.
        total = share if ctx.distributed else n
        _commit_chunks(
            writer,
            mine,
            total - share,
            total,
            job,
            workers,
            progress,
            profiles,
            # Metadata, tables and static arrays (the classifiers) come from rank 0 alone.
            layout=None if ctx.distributed or not ctx.is_main else statics,
            ready=ready,
        )
        # A barrier: past it, every rank's chunks are committed.
        per_rank = distributed.all_gather_json(len(mine)) if ctx.distributed else [len(mine)]
    finally:
        if writer is not None:
            writer.close()
    report: dict[str, Any] = {}
    if ctx.is_main:
        writer.loc.fs.invalidate_cache()  # listings cached by object stores miss other ranks' files
        report = {
            "size": writer.loc.du(),
            "seconds": time.perf_counter() - t0,
            "device": str(dev),
        }
    extra: dict[str, Any] = {"device": str(dev), "views_mode": meta.views.mode}
    if ctx.distributed:
        report = distributed.broadcast_json(report)
        extra["device"] = report["device"]
        extra["world_size"] = ctx.world
        extra["chunks_per_rank"] = per_rank
    return DumpResult(
        url=writer.loc.url,
        status=status,
        num_samples=n,
        num_classes=c,
        num_views=v,
        teachers=list(tinfo),
        chunks_total=num_chunks,
        chunks_written=written,
        seconds=float(report["seconds"]),
        bytes_on_disk=int(report["size"]),
        fingerprint=split.fingerprint(),
        extra=extra,
    )


def _commit_chunks(
    writer: Any,
    chunks: list[int],
    done_rows: int,
    total: int,
    job: _Job,
    workers: int,
    progress: Progress | None,
    profiles: _Profiles,
    layout: dict[str, np.ndarray] | None = None,
    ready: dict[int, dict[str, np.ndarray]] | None = None,
) -> None:
    """Compute and commit ``chunks`` in order; writing one overlaps computing the next.

    ``layout``: the static arrays, when the cache's arrays, tables and static record are
    still to be written (:func:`_write_layout`); the commit thread does it first, while
    the first chunk is computed. ``ready``: chunks computed already (those the rest
    profiles were fitted on), committed first."""
    ready = dict(ready or {})
    chunks = [ch for ch in chunks if ch in ready] + [ch for ch in chunks if ch not in ready]
    if progress:
        progress(done_rows, total)
    commit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="softlabels-commit")
    load_pool = ThreadPoolExecutor(
        max_workers=max(1, workers), thread_name_prefix="softlabels-load"
    )
    # Commits queue up in one commit thread (in order) while the next chunks are computed:
    # at most COMMIT_QUEUE_CHUNKS chunks, and at most COMMIT_QUEUE_BYTES of them beyond one.
    queue: deque[tuple[Future[None], int]] = deque()
    queued_bytes = 0
    commit_failed = False

    def settle(block: bool) -> None:
        """Raise the first failed commit; pop finished ones (``block``: wait for the oldest)."""
        nonlocal queued_bytes, commit_failed
        while queue and (block or queue[0][0].done()):
            future, nbytes = queue[0]
            if future.exception() is not None:
                commit_failed = True
                future.result()
            queue.popleft()
            queued_bytes -= nbytes
            block = False

    if layout is not None:
        queue.append((commit_pool.submit(_write_layout, writer, layout), 0))
    try:
        computed = [writer.rows(ch) for ch in chunks if ch not in ready]
        loads = _Loads(load_pool, job.split, computed, job.config.batch_size)
        for chunk in chunks:
            start, stop = writer.rows(chunk)
            data = ready.pop(chunk, None) or _run_chunk(job, start, stop, loads)
            nbytes = sum(int(a.nbytes) for a in data.values())
            settle(block=False)
            while queue and (
                len(queue) >= COMMIT_QUEUE_CHUNKS or queued_bytes + nbytes > COMMIT_QUEUE_BYTES
            ):
                settle(block=True)
            # The commit thread also encodes sparse teachers (top-k and the measured error).
            future = commit_pool.submit(_encode_and_write, writer, chunk, data, job, profiles)
            queue.append((future, nbytes))
            queued_bytes += nbytes
            done_rows += stop - start
            if progress:
                progress(done_rows, total)
        while queue:
            settle(block=True)
    finally:
        # A failed commit stops the commits queued after it (their chunks are redone by
        # the rerun); otherwise never lose a chunk that was computed: let every queued
        # commit finish before leaving (exception() waits without raising).
        for future, _ in queue:
            if not (commit_failed and future.cancel()):
                future.exception()
        commit_pool.shutdown(wait=True)
        load_pool.shutdown(wait=True, cancel_futures=True)


def _write_layout(writer: Any, statics: dict[str, np.ndarray]) -> None:
    """Everything of a cache but its chunks: arrays and tables (idempotent on a resume),
    then the static arrays (the classifiers) with the arrays' metadata documents."""
    writer.prepare()
    if not writer.static_done():
        writer.write_static(statics)


def _encode_and_write(
    writer: Any, chunk: int, data: dict[str, np.ndarray], job: _Job, profiles: _Profiles
) -> None:
    """Commit one chunk; a sparse teacher's float32 logits (under its logits path in
    ``data``, see :func:`_run_chunk`) become its top-k arrays and error row first."""
    for name, info in job.tinfo.items():
        if info.topk is not None:
            logits32 = data.pop(schema.teacher_array(name, schema.LOGITS))
            encoded = sparse.encode_chunk(
                logits32, np.dtype(job.config.dtype), info.topk.k, profiles.pairs(name, data)
            )
            data.update({schema.teacher_array(name, w): a for w, a in encoded.items()})
    writer.write_chunk(chunk, data)


@dataclass(frozen=True)
class _Profiles:
    """The sparse teachers' rest profiles (``topk/profile``) and the split's labels: what
    the rest of a chunk's pairs is rebuilt from."""

    tables: dict[str, np.ndarray]
    labels: np.ndarray  # [N], of the split's rows

    def pair_labels(
        self, data: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """A computed chunk's row labels ``[rows]`` and, for mixed views, its partners'
        labels and lam ``[rows, V]`` (else None): what its pairs' profiles depend on."""
        own = data[schema.LABELS].astype(np.int64)
        partner = data.get(schema.MIX_PARTNER)
        if partner is None:
            return own, None, None
        return own, self.labels[np.where(partner >= 0, partner, 0)], data[schema.MIX_LAM]

    def pairs(self, name: str, data: dict[str, np.ndarray]) -> np.ndarray:
        """The profiles of a chunk's (row, view) pairs for teacher ``name``."""
        own, other, lam = self.pair_labels(data)
        return sparse.pair_profiles(self.tables[name], own[:, None], other, lam)


def _fit_chunks(num_chunks: int, chunk_bytes: int, budget: int | None = None) -> list[int]:
    """The chunks a rest profile is fitted on: spread evenly over the split (a split sorted
    by class gives every part of it a say), as many as ``budget`` bytes of outputs hold
    (:data:`PROFILE_FIT_BYTES` by default)."""
    budget = PROFILE_FIT_BYTES if budget is None else budget
    count = max(1, min(num_chunks, budget // max(1, chunk_bytes)))
    return sorted({int(x) for x in np.linspace(0, num_chunks - 1, count).round()})


def _fit_profiles(
    writer: Any, out: str, job: _Job, statics: dict[str, np.ndarray], workers: int
) -> tuple[_Profiles, dict[int, dict[str, np.ndarray]]]:
    """The sparse teachers' rest profiles: read back when the cache's static record holds
    them (a resume), else fitted on :func:`_fit_chunks`'s chunks, computed here and
    returned to be committed (``statics`` gets the profiles). Before any chunk is encoded,
    so every chunk's arrays and measured error are those of the stored profile."""
    config, tinfo = job.config, job.tinfo
    names = [n for n, info in tinfo.items() if info.topk is not None]
    labels = np.asarray(job.split.labels, dtype=np.int64)
    if not names:
        return _Profiles({}, labels), {}
    if writer.static_done():
        return _stored_profiles(out, tinfo, job.split), {}
    c, v = int(job.ds.num_classes), config.num_views
    row_bytes = v * sum(
        c * 4 + (info.feature_dim or 0) * np.dtype(config.dtype).itemsize for info in tinfo.values()
    )
    chunks = _fit_chunks(writer.num_chunks, writer.chunk_size * row_bytes)
    profiles = _Profiles({}, labels)
    fits = {n: sparse.ProfileFit(c, tinfo[n].topk.k) for n in names}
    ready: dict[int, dict[str, np.ndarray]] = {}
    with ThreadPoolExecutor(
        max_workers=max(1, workers), thread_name_prefix="softlabels-load"
    ) as pool:
        spans = [writer.rows(chunk) for chunk in chunks]
        loads = _Loads(pool, job.split, spans, config.batch_size)
        for chunk, (start, stop) in zip(chunks, spans, strict=True):
            ready[chunk] = _run_chunk(job, start, stop, loads)
            own, other, lam = profiles.pair_labels(ready[chunk])
            for n in names:  # the values the cache keeps: cast to its dtype
                logits = ready[chunk][schema.teacher_array(n, schema.LOGITS)]
                fits[n].add(logits.astype(config.dtype), own, other, lam)
    for n in names:
        profiles.tables[n] = fits[n].table()
        statics[schema.teacher_array(n, schema.TOPK_PROFILE)] = profiles.tables[n]
    return profiles, ready


def _stored_profiles(out: str, tinfo: dict[str, Any], split: Any) -> _Profiles:
    """The rest profiles a cache's static record holds (rank 0 stored them)."""
    from softlabels.stores.reader import Cache

    cache = Cache(out)
    tables = {
        n: cache.teacher(n).read_static(schema.TOPK_PROFILE)
        for n, info in tinfo.items()
        if info.topk is not None
    }
    return _Profiles(tables, np.asarray(split.labels, dtype=np.int64))


def _error_doc(exc: BaseException) -> dict[str, Any]:
    """An exception of rank 0 as plain data for the other ranks."""
    if isinstance(exc, KeyboardInterrupt):
        return {"type": "KeyboardInterrupt", "message": "rank 0 was interrupted"}
    if isinstance(exc, OSError) and not isinstance(exc, SoftlabelsError):
        what = exc.strerror or str(exc) or type(exc).__name__
        return {"type": "StorageError", "message": f"writing the cache failed on rank 0: {what}"}
    return {"type": type(exc).__name__, "message": str(exc)}


def _error_from(doc: dict[str, Any]) -> BaseException:
    """The error a rank raises for rank 0's: the same class and message for expected errors
    (so every rank exits with the same code and line)."""
    import softlabels.errors as errors

    cls = getattr(errors, str(doc.get("type")), None)
    message = str(doc.get("message"))
    if doc.get("type") == "KeyboardInterrupt":
        return KeyboardInterrupt(message)
    if isinstance(cls, type) and issubclass(cls, SoftlabelsError):
        return cls(message)
    return RuntimeError(f"rank 0 failed while opening the cache: {doc.get('type')}: {message}")


def _run_chunk(job: _Job, start: int, stop: int, loads: _Loads) -> dict[str, np.ndarray]:
    """Teacher outputs for rows [start, stop), as the arrays of one chunk (checked finite);
    its input batches come from ``loads``.

    A sparse teacher's entry (at its logits path) holds its float32 logits, checked finite
    in the cache's dtype; :func:`_encode_and_write` turns them into its top-k arrays."""
    config, ds, split, models, tinfo, dev = (
        job.config,
        job.ds,
        job.split,
        job.models,
        job.tinfo,
        job.dev,
    )
    rows = np.arange(start, stop, dtype=np.int64)
    v = config.num_views
    seeds = (
        job.view_seeds(config.seed, rows, v)
        if config.views > 0
        else np.zeros((len(rows), 1), np.uint64)
    )
    np_dtype = np.dtype(config.dtype)
    out: dict[str, np.ndarray] = {
        schema.LABELS: split.labels[start:stop].astype(np.int32),
        schema.VIEW_SEEDS: seeds.astype(np.uint64),
    }
    mixes = _draw_mixes(job, seeds)
    if mixes is not None:
        out[schema.MIX_PARTNER] = np.stack([m.partner for m in mixes], axis=1)
        out[schema.MIX_LAM] = np.stack([m.lam for m in mixes], axis=1)
        out[schema.MIX_BOX] = np.stack([m.box for m in mixes], axis=1)
    # The row arrays of each teacher, by teacher and array name (views into ``out``). A
    # sparse teacher's logits are kept in float32 too (its error is measured against them)
    # and are not stored: its topk arrays are, once the logits are checked finite.
    arrays: dict[str, dict[str, np.ndarray]] = {}
    full: dict[str, np.ndarray] = {}  # float32 logits of the sparse teachers
    for name, info in tinfo.items():
        c = int(ds.num_classes)
        arrays[name] = {schema.LOGITS: np.empty((len(rows), v, c), np_dtype)}
        if info.topk is not None:
            full[name] = np.empty((len(rows), v, c), np.float32)
        if info.features:
            arrays[name][schema.FEATURES] = np.empty((len(rows), v, info.feature_dim), np_dtype)
        for what, arr in arrays[name].items():
            out[schema.teacher_array(name, what)] = (
                full.get(name, arr) if what == schema.LOGITS else arr
            )

    for idx in _batches(start, stop, config.batch_size):
        raw = loads.next(idx).to(dev, non_blocking=True)
        lo, hi = idx[0] - start, idx[-1] + 1 - start
        for view in range(v):
            x = (
                ds.clean(raw)
                if config.views == 0
                else _view_inputs(
                    job, raw, seeds[lo:hi, view], view,
                    None if mixes is None else mixes[view].take(slice(lo, hi)),
                )
            )  # fmt: skip
            # Casting to float16 turns values beyond its range into Inf; the check below names them.
            with torch.inference_mode():
                for name, (lm, _cls) in models.items():
                    logits, feats = lm.forward(x)
                    if name in full:  # float32 first, the cache's dtype from it on the host
                        _store(full[name][lo:hi, view], logits)
                        logits = torch.from_numpy(full[name][lo:hi, view])
                    _store(arrays[name][schema.LOGITS][lo:hi, view], logits)
                    if schema.FEATURES in arrays[name]:
                        _store(arrays[name][schema.FEATURES][lo:hi, view], feats)
    for name, what, arr in ((n, w, a) for n in arrays for w, a in arrays[n].items()):
        bad = nonfinite_rows(arr)
        if len(bad):
            hint = (
                "the values overflow float16: use --dtype float32; "
                if np_dtype == np.float16
                and _finite_in_fp32(models[name][0], job, start, rows[bad], seeds, what, mixes)
                else ""
            )
            raise nonfinite_error(
                f"teacher {name!r} produced NaN/Inf {what}",
                bad,
                f"{hint}every chunk committed before this one stays committed",
                names=lambda found: [split.ids[start + int(i)] for i in found],
            )
    return out


def _store(dst: np.ndarray, values: torch.Tensor) -> None:
    """Copy a batch of teacher outputs into its place in a chunk array, cast to the array's
    dtype by torch (the same IEEE rounding as numpy's cast, without its scalar float16
    loop or a float32 copy on the host; on a GPU cast there, so half the bytes cross)."""
    out = torch.from_numpy(dst)
    out.copy_(values if values.device.type == "cpu" else values.to(out.dtype))


class _Loads:
    """Input batches of a sequence of chunks, in the order of ``spans``: ``next(idx)``
    returns the batch of rows ``idx``. A file-backed split's batches are loaded ``ahead``
    in advance by the thread pool, across chunk boundaries (the next chunk's first batches
    load while this chunk's last ones run); an in-memory split's are indexed when asked
    for (microseconds: a hop to a loader thread and back costs more)."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        split: Any,
        spans: list[tuple[int, int]],
        batch_size: int,
        ahead: int = 2,
    ) -> None:
        self._load = split.load
        self._pool = None if split.in_memory else pool
        self._ahead = ahead
        self._todo = deque(idx for s, e in spans for idx in _batches(s, e, batch_size))
        self._queue: deque[tuple[np.ndarray, Future[torch.Tensor]]] = deque()
        self._fill()

    def _fill(self) -> None:
        while self._pool is not None and self._todo and len(self._queue) < self._ahead:
            idx = self._todo.popleft()
            self._queue.append((idx, self._pool.submit(self._load, idx)))

    def next(self, idx: np.ndarray) -> torch.Tensor:
        if self._pool is None:
            queued = self._todo.popleft()
            future = None
        else:
            queued, future = self._queue.popleft()
            self._fill()
        # Batches are row ranges: first row and length name one. Never a wrong batch.
        if queued[0] != idx[0] or len(queued) != len(idx):
            raise RuntimeError(f"batch of rows {idx[0]}.. asked for, {queued[0]}.. next")
        return self._load(idx) if future is None else future.result()


def _draw_mixes(job: _Job, seeds: np.ndarray) -> list[Any] | None:
    """The mix of every (row, view) of a chunk, one :class:`~softlabels.data.mixing.Mix` per
    view, from the views' own seeds (None without mixing)."""
    from softlabels.data.mixing import draw

    mixing = job.config.mixing
    if mixing is None:
        return None
    spatial = tuple(job.ds.input_shape[1:])
    n = len(job.split)
    return [draw(mixing, seeds[:, view], n, spatial) for view in range(seeds.shape[1])]


def _view_inputs(
    job: _Job, raw: torch.Tensor, seeds: np.ndarray, view: int, mix: Any
) -> torch.Tensor:
    """Augmented view ``view`` of a batch, mixed with its partners' own (unmixed) view ``view``
    when ``mix`` says so (the partners are loaded here: they may be in any chunk)."""
    from softlabels.data.mixing import mix_views

    config, ds = job.config, job.ds

    def partner_views(partners: np.ndarray) -> torch.Tensor:
        s = job.view_seeds(config.seed, partners, config.num_views)[:, view]
        return ds.augment(job.split.load(partners).to(job.dev), s, strength=config.strength)

    return mix_views(ds.augment(raw, seeds, strength=config.strength), mix, partner_views)


def _finite_in_fp32(
    lm: Any,
    job: _Job,
    start: int,
    bad_rows: np.ndarray,
    seeds: np.ndarray,
    what: str = schema.LOGITS,
    mixes: list[Any] | None = None,
) -> bool:
    """Whether the offending outputs are finite before the float16 cast (an overflow)."""
    config = job.config
    raw = job.split.load(bad_rows[:8]).to(job.dev)
    local = bad_rows[:8] - start
    with torch.inference_mode():
        for view in range(config.num_views):
            x = (
                job.ds.clean(raw)
                if config.views == 0
                else _view_inputs(
                    job, raw, seeds[local, view], view,
                    None if mixes is None else mixes[view].take(local),
                )
            )  # fmt: skip
            logits, feats = lm.forward(x)
            value = logits if what == schema.LOGITS else feats
            if value is None or not torch.isfinite(value).all():
                return False
    return True
