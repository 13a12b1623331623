"""Dump overhead (issue 2): ``softlabels dump`` against a bare loop of the same teacher.

    .venv/bin/python benchmarks/bench_dump.py                       # cnn1d on mnist1d-lt
    .venv/bin/python benchmarks/bench_dump.py --dataset digits-lt --teacher resnet32 --views 4
    .venv/bin/python benchmarks/bench_dump.py --profile            # where the extra time goes

The bare loop does only what any teacher pass must: for every batch of the same size and in
the same order, load the raw rows, apply ``clean`` (or ``augment`` for ``--views K``), run
the teacher and copy logits and features to the host. Nothing is written. The dump is
``softlabels.teachers.dump`` into a fresh temporary folder, timed end to end (model load,
tables, chunk writes, checksums). Both load the model from the same spec, the dataset is
loaded once beforehand (it is cached in-process). The two alternate ``--repeats`` times after
one warm-up each; the medians and their ratio are printed (and the ratio of the minima,
the least disturbed runs on a shared machine), the same on the process's CPU time (all
threads; on a shared CPU far steadier than wall time), the seconds spent inside the
teacher's forward calls on each side (equal unless the dump's other threads slow the
teacher down), then one JSON line.

Target (issue 2): ratio <= 1.10 on a CPU, <= 1.05 on a GPU.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from softlabels.data import load_dataset, view_seeds
from softlabels.device import resolve_device
from softlabels.models import load_model
from softlabels.models.loading import LoadedModel
from softlabels.teachers import DumpConfig, dump, parse_teacher


def bare_loop(
    dataset: str, teacher: str, batch_size: int, views: int, seed: int, device: str
) -> float:
    """Seconds for load -> clean/augment -> teacher -> .cpu() over the split, no writing."""
    t0 = time.perf_counter()
    dev = resolve_device(device)
    ds = load_dataset(dataset)
    split = ds.train
    n = len(split)
    in_channels = int(ds.clean(split.load(np.arange(1))).shape[1])
    lm = load_model(teacher, num_classes=ds.num_classes, in_channels=in_channels, device=str(dev))
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            raw = split.load(rows).to(dev, non_blocking=True)
            seeds = view_seeds(seed, rows, views) if views else None
            for v in range(max(1, views)):
                x = ds.clean(raw) if seeds is None else ds.augment(raw, seeds[:, v])
                logits, feats = lm.forward(x)
                logits.float().cpu()
                if feats is not None:
                    feats.float().cpu()
    return time.perf_counter() - t0


def dump_once(config: DumpConfig, device: str, workers: int | None) -> tuple[float, Any]:
    tmp = tempfile.mkdtemp(prefix="bench-dump-")
    try:
        t0 = time.perf_counter()
        result = dump(config, os.path.join(tmp, "c.slc"), device=device, workers=workers)
        return time.perf_counter() - t0, result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- profiling


class Timers:
    """Wall time per label, summed over calls, plus which thread made the calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str) -> Callable[[], None]:
        original = getattr(owner, name)
        timers = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.seconds[label] += time.perf_counter() - t0
                timers.calls[label] += 1

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)


@contextmanager
def profiled() -> Iterator[Timers]:
    """Time the parts of a dump by wrapping library functions (restored afterwards)."""
    import concurrent.futures
    import importlib

    import zarr

    import softlabels.models as models_mod
    import softlabels.stores.cache as cache_mod
    import softlabels.stores.manifest as manifest_mod
    from softlabels.stores._fs import Location

    # The module, not the function softlabels.teachers re-exports under the same name.
    dump_mod = importlib.import_module("softlabels.teachers.dump")

    timers = Timers()
    state = threading.local()
    main = threading.main_thread()
    original_run_chunk = dump_mod._run_chunk
    original_result = concurrent.futures.Future.result

    def run_chunk(*a: Any, **k: Any) -> Any:
        state.in_chunk = True
        t0 = time.perf_counter()
        try:
            return original_run_chunk(*a, **k)
        finally:
            state.in_chunk = False
            timers.seconds["compute chunks (main thread)"] += time.perf_counter() - t0
            timers.calls["compute chunks (main thread)"] += 1

    def result(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original_result(self, *a, **k)
        finally:
            if threading.current_thread() is main:
                label = None
                if getattr(self, "_bench_commit", False):
                    label = "main thread waits for the previous commit"
                elif getattr(state, "in_chunk", False):
                    label = "  wait for prefetched batches (in compute)"
                if label:
                    timers.seconds[label] += time.perf_counter() - t0
                    timers.calls[label] += 1

    class TaggingPool(concurrent.futures.ThreadPoolExecutor):
        """The dump's pools; futures of chunk commits are tagged for ``result`` above."""

        def submit(self, fn: Any, /, *a: Any, **k: Any) -> Any:
            future = super().submit(fn, *a, **k)
            if getattr(fn, "__name__", "") in ("write_chunk", "_encode_and_write"):
                future._bench_commit = True  # type: ignore[attr-defined]
            return future

    original_pool = dump_mod.ThreadPoolExecutor
    dump_mod._run_chunk = run_chunk
    dump_mod.ThreadPoolExecutor = TaggingPool
    concurrent.futures.Future.result = result  # type: ignore[method-assign]
    undo = [
        lambda: setattr(dump_mod, "_run_chunk", original_run_chunk),
        lambda: setattr(dump_mod, "ThreadPoolExecutor", original_pool),
        lambda: setattr(concurrent.futures.Future, "result", original_result),
        timers.wrap(models_mod, "load_model", "load_model"),
        timers.wrap(cache_mod.CacheWriter, "open", "open/create cache + tables"),
        timers.wrap(cache_mod.CacheWriter, "write_static", "write classifier (static)"),
        # writer thread: everything of one chunk's commit ...
        timers.wrap(cache_mod.CacheWriter, "write_chunk", "commit chunks (writer thread)"),
        # ... of which: encoding and writing each array chunk (zarr only for other codecs)
        timers.wrap(zarr.Array, "__setitem__", "  zarr array writes (encode+zstd+store)"),
        timers.wrap(cache_mod.CacheWriter, "_write_array_chunk", "  encode + write array chunks"),
        timers.wrap(manifest_mod, "sha256", "    sha256 alone (all callers)"),
        timers.wrap(manifest_mod.Manifest, "write", "  manifest record + fsync (in commit)"),
        timers.wrap(Location, "read", "  Location.read (all callers)"),
        timers.wrap(cache_mod.Cache, "nbytes_on_disk", "size on disk (du) at the end"),
    ]
    try:
        yield timers
    finally:
        for u in reversed(undo):
            u()


PROFILE_ORDER = (
    "load_model",
    "open/create cache + tables",
    "write classifier (static)",
    "compute chunks (main thread)",
    "  wait for prefetched batches (in compute)",
    "main thread waits for the previous commit",
    "commit chunks (writer thread)",
    "  zarr array writes (encode+zstd+store)",
    "  encode + write array chunks",
    "    sha256 alone (all callers)",
    "  Location.read (all callers)",
    "  manifest record + fsync (in commit)",
    "size on disk (du) at the end",
)


# --------------------------------------------------------------------------- main


def machine(device: str) -> dict[str, Any]:
    dev = resolve_device(device)
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": str(dev),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100,n_max=5000")
    ap.add_argument("--teacher", default="cnn1d", help="model spec (name, checkpoint, py:...)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--views", type=int, default=0)
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--no-features", action="store_true")
    ap.add_argument("--workers", type=int, default=None, help="default: the dump's own")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="break the dump's time down")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ds = load_dataset(args.dataset)
    load_s = time.perf_counter() - t0
    config = DumpConfig(
        dataset=args.dataset,
        teachers=(parse_teacher(f"t={args.teacher}"),),
        views=args.views,
        features=not args.no_features,
        dtype=args.dtype,
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        seed=args.seed,
    )

    bare_cpu: list[float] = []
    dump_cpu: list[float] = []

    # Seconds inside the teacher's forward calls, per run: equal on both sides unless the
    # dump's other threads slow the teacher down (how the zarr-path contention was found).
    forward_s = [0.0]
    original_forward = LoadedModel.forward

    def timed_forward(self: LoadedModel, x: torch.Tensor) -> Any:
        t0 = time.perf_counter()
        try:
            return original_forward(self, x)
        finally:
            forward_s[0] += time.perf_counter() - t0

    LoadedModel.forward = timed_forward  # type: ignore[method-assign]
    bare_fwd: list[float] = []
    dump_fwd: list[float] = []

    def bare() -> float:
        c0, forward_s[0] = time.process_time(), 0.0
        s = bare_loop(
            args.dataset, args.teacher, args.batch_size, args.views, args.seed, args.device
        )
        bare_cpu.append(time.process_time() - c0)
        bare_fwd.append(forward_s[0])
        return s

    def timed_dump() -> float:
        c0, forward_s[0] = time.process_time(), 0.0
        s = dump_once(config, args.device, args.workers)[0]
        dump_cpu.append(time.process_time() - c0)
        dump_fwd.append(forward_s[0])
        return s

    # Warm-up (allocator, kernels, first-touch of the data).
    bare()
    _, result = dump_once(config, args.device, args.workers)
    bare_cpu.clear()
    bare_fwd.clear()
    bare_s: list[float] = []
    dump_s: list[float] = []
    for r in range(args.repeats):
        order = ("bare", "dump") if r % 2 == 0 else ("dump", "bare")
        for which in order:
            if which == "bare":
                bare_s.append(bare())
            else:
                dump_s.append(timed_dump())
    med_bare, med_dump = statistics.median(bare_s), statistics.median(dump_s)
    out: dict[str, Any] = {
        "bench": "dump_overhead",
        "dataset": ds.spec,
        "N": len(ds.train),
        "teacher": args.teacher,
        "views": args.views,
        "dtype": args.dtype,
        "features": not args.no_features,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "workers": args.workers,
        "repeats": args.repeats,
        "dataset_load_s": round(load_s, 3),
        "bare_s": [round(x, 4) for x in bare_s],
        "dump_s": [round(x, 4) for x in dump_s],
        "bare_median_s": round(med_bare, 4),
        "dump_median_s": round(med_dump, 4),
        "ratio": round(med_dump / med_bare, 4),
        "bare_min_s": round(min(bare_s), 4),
        "dump_min_s": round(min(dump_s), 4),
        "ratio_of_mins": round(min(dump_s) / min(bare_s), 4),
        "ratio_pairwise_median": round(
            statistics.median(d / b for d, b in zip(dump_s, bare_s, strict=True)), 4
        ),
        # CPU time of the process (all threads): on a CPU shared with other jobs far less
        # disturbed than wall time; with one torch thread, the bare loop's is its wall time
        # on an idle core. The dump's also counts its commit thread (overlapped on 2 cores).
        "bare_cpu_s": [round(x, 4) for x in bare_cpu],
        "dump_cpu_s": [round(x, 4) for x in dump_cpu],
        "ratio_cpu": round(statistics.median(dump_cpu) / statistics.median(bare_cpu), 4),
        # the teacher's forward calls alone (the dump's count includes its one probe batch)
        "bare_forward_median_s": round(statistics.median(bare_fwd), 4),
        "dump_forward_median_s": round(statistics.median(dump_fwd), 4),
        "bytes_on_disk": result.bytes_on_disk,
        "machine": machine(args.device),
    }
    if args.profile:
        with profiled() as timers:
            total, _ = dump_once(config, args.device, args.workers)
        out["profile"] = {
            "dump_s": round(total, 4),
            "parts_s": {k: round(v, 4) for k, v in timers.seconds.items()},
            "calls": dict(timers.calls),
        }
        print(f"profile of one dump ({total:.3f} s wall):")
        for k in PROFILE_ORDER:
            if k in timers.seconds:
                print(f"  {k:48s} {timers.seconds[k]:8.3f} s  ({timers.calls[k]} calls)")
    print(
        f"{ds.spec} N={len(ds.train)} teacher={args.teacher} views={args.views} "
        f"batch={args.batch_size} chunk={args.chunk_size}: bare {med_bare:.3f} s, "
        f"dump {med_dump:.3f} s, ratio {med_dump / med_bare:.3f} (medians); "
        f"ratio of minima {min(dump_s) / min(bare_s):.3f}; CPU time: bare "
        f"{statistics.median(bare_cpu):.3f} s, dump {statistics.median(dump_cpu):.3f} s, "
        f"ratio {out['ratio_cpu']:.3f}; in the teacher's forward: bare "
        f"{out['bare_forward_median_s']:.3f} s, dump {out['dump_forward_median_s']:.3f} s"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
