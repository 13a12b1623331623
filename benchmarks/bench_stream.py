"""Benchmark of streamed teacher targets (``distill --target-memory``).

``memory``: a synthetic dense cache of N x V x C float16 logits (built chunk by chunk with
the store layer, as ``bench_tune_tau.py`` does) served for one epoch of batches in the
chunk-shuffled order, each batch's targets turned into probabilities (the work a loss
does with them), in fresh child processes so each peak RSS belongs to one mode:

* ``streamed``: :class:`~softlabels.students.streaming.StreamedTargets` under the budget
  (``plan_stream``: the shuffle buffer as many chunks as fit, 2 read ahead);
* ``memory``: :func:`~softlabels.students.targets.load_targets` (the whole array read,
  verified, held), then the same epoch (where it fits in RAM).

``accuracy``: a real case (mnist1d-lt): a BSCE teacher, a dump, then KD students with the
chunk-shuffled order (small shuffle buffers) against the fully random order, per seed.

    OMP_NUM_THREADS=1 python benchmarks/bench_stream.py memory --n 150000 --c 10000 \\
        --budget 1GB --out /work/runs/stream.slc
    OMP_NUM_THREADS=1 python benchmarks/bench_stream.py accuracy --seeds 0 1 --out /work/runs/acc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _synthetic import synthetic_meta, synthetic_tables

from softlabels.stores import schema


def build(url: str, n: int, v: int, c: int, chunk: int, compressor: str) -> dict[str, Any]:
    """A dense cache [n, v, c] float16, written chunk by chunk (never whole in memory)."""

    from softlabels.stores.writer import ArraySpec, CacheWriter

    rng = np.random.default_rng(0)
    labels = rng.integers(0, c, n).astype(np.int32)
    counts = np.bincount(labels, minlength=c)
    meta = synthetic_meta(
        n=n,
        c=c,
        v=v,
        chunk=chunk,
        key=f"bench-stream-{n}-{v}-{c}-{chunk}-{compressor}",
        config={"bench": "stream", "n": n, "v": v, "c": c, "chunk": chunk},
        teacher={"features": False, "classifier": False, "dtype": "float16"},
        spec=f"synthetic:n={n},c={c}",
        counts=counts,
        fmt=schema.DENSE_FORMAT_VERSION,
    )
    logits = schema.teacher_array("t", schema.LOGITS)
    specs = [
        ArraySpec(schema.LABELS, (n,), "int32"),
        ArraySpec(schema.VIEW_SEEDS, (n, v), "uint64"),
        ArraySpec(logits, (n, v, c), "float16"),
    ]
    tables = synthetic_tables(n, counts)
    base = (rng.normal(size=(chunk, v, c)) * 2.0).astype(np.float16)
    t0 = time.perf_counter()
    w = CacheWriter.open(url, meta=meta, specs=specs, tables=tables, compressor=compressor)
    with w:
        w.write_static({})
        for ch in w.pending_chunks():
            s, e = w.rows(ch)
            z = base[rng.permutation(chunk)[: e - s]]
            w.write_chunk(
                ch,
                {
                    schema.LABELS: labels[s:e],
                    schema.VIEW_SEEDS: np.zeros((e - s, v), np.uint64),
                    logits: z,
                },
            )
    return {"build_seconds": time.perf_counter() - t0}


def phase(mode: str, url: str, budget: str, batch: int) -> dict[str, Any]:
    """One epoch of batches' targets (chunk-shuffled order) streamed or held whole."""
    import torch

    from softlabels import open_cache
    from softlabels.engine.chunk_sampler import ChunkSampler
    from softlabels.engine.inputs import Batch, split_batches
    from softlabels.students.memory import parse_size
    from softlabels.students.streaming import StreamedTargets, plan_stream
    from softlabels.students.targets import load_targets

    cache = open_cache(url)
    dev = torch.device("cpu")
    plan = plan_stream(cache, {"t": False}, parse_size(budget))
    assert plan is not None, "the cache fits the budget: nothing to stream"
    sampler = ChunkSampler(cache.num_samples, cache.chunk_size, plan.buffer, seed=0)
    t0 = time.perf_counter()
    if mode == "streamed":
        targets: Any = StreamedTargets(cache, "t", dev, prefetch=plan.prefetch)
        targets.bind(sampler)
    else:
        targets = load_targets(cache, "t", dev)
    load = time.perf_counter() - t0
    x, y = torch.zeros(1), torch.zeros(1)
    rows_done = 0
    t1 = time.perf_counter()
    checksum = 0.0
    for step, rows in enumerate(split_batches(sampler.epoch(0), batch)):
        z = targets.batch_logits(Batch(0, step, rows, x, y, view=np.zeros(len(rows), np.int64)))
        checksum += float(torch.softmax(z / 4.0, dim=1)[:, 0].sum())
        rows_done += len(rows)
    epoch = time.perf_counter() - t1
    out: dict[str, Any] = {
        "mode": mode,
        "buffer_chunks": plan.buffer,
        "prefetch_chunks": plan.prefetch,
        "chunk_bytes": plan.chunk_bytes,
        "targets_bytes": plan.total_bytes,
        "budget_bytes": plan.budget,
        "load_seconds": load,
        "epoch_seconds": epoch,
        "rows": rows_done,
        "rows_per_s_epoch": rows_done / epoch,
        "rows_per_s_with_load": rows_done / (epoch + load),
        "checksum": checksum,
    }
    if mode == "streamed":
        out["peak_decoded_chunks"] = targets.count.peak
        targets.close()
    return out


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def child(mode: str, url: str, budget: str, batch: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_phase", mode, url, budget, str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def memory_main(args: argparse.Namespace) -> dict[str, Any]:
    raw = args.n * args.v * args.c * 2
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "logits_bytes": raw,
    }
    reuse = os.path.exists(os.path.join(args.out, schema.ROOT_DOC))
    if not reuse:
        print(f"building {args.out} ({raw / 1e9:.2f} GB)", file=sys.stderr, flush=True)
        report.update(build(args.out, args.n, args.v, args.c, args.chunk_size, args.compressor))
    modes = ["streamed", "memory"] if not args.streamed_only else ["streamed"]
    for mode in modes:
        report[mode] = child(mode, args.out, args.budget, args.batch_size)
        print(json.dumps({mode: report[mode]}), file=sys.stderr, flush=True)
    report["uptime_after"] = subprocess.run(
        ["uptime"], capture_output=True, text=True
    ).stdout.strip()
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    return report


def accuracy_main(args: argparse.Namespace) -> dict[str, Any]:
    from softlabels.engine.optim import OptimConfig
    from softlabels.students import StudentSpec, distill
    from softlabels.teachers import DumpConfig, TeacherSpec, dump
    from softlabels.teachers.train import TrainConfig, train

    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        root = out / f"seed{seed}"
        cfg = TrainConfig(
            dataset=args.dataset,
            model="cnn1d",
            loss="bsce",
            epochs=args.epochs,
            batch_size=64,
            optim=OptimConfig(lr=0.05),
            seed=seed,
        )
        teacher = train(cfg, root / "teacher", device="cpu")
        cache = str(root / "cache.slc")
        dump(
            DumpConfig(
                dataset=args.dataset,
                teachers=(TeacherSpec("bsce", teacher.model_path),),
                views=args.views,
                chunk_size=args.chunk_size,
                seed=seed,
            ),
            cache,
            device="cpu",
            overwrite=True,
        )
        spec = StudentSpec(
            name="kd", method="kd", teacher="bsce", model="cnn1d", epochs=args.epochs,
            seed=seed, data_seed=seed,
        )  # fmt: skip
        orders: list[tuple[str, dict[str, Any]]] = [("full", {"shuffle": "full"})]
        orders += [
            (f"chunks B={b}", {"shuffle": "chunks", "shuffle_buffer": b}) for b in args.buffers
        ]
        for label, kw in orders:
            res = distill(
                cache, args.dataset, [spec], root / label.replace(" ", "_"), device="cpu",
                plots=False, evaluate_teachers=False, **kw,
            )  # fmt: skip
            s = res.students[0]
            row = {
                "seed": seed,
                "order": label,
                **{k: s[k] for k in ("top1", "many", "medium", "few")},
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    from softlabels import open_cache

    c = open_cache(str(out / f"seed{args.seeds[0]}" / "cache.slc"))
    return {
        "date": time.strftime("%Y-%m-%d"),
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "num_samples": c.num_samples,
        "chunk_size": c.chunk_size,
        "rows": rows,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_phase":  # child process
        import torch  # noqa: F401  (its RSS is the baseline)

        import softlabels.students.streaming  # noqa: F401

        mode, url, budget, batch = sys.argv[2:6]
        baseline = _rss()
        out = phase(mode, url, budget, int(batch))
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out["baseline_rss_bytes"] = baseline
        out["peak_growth_bytes"] = out["peak_rss_bytes"] - baseline
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--n", type=int, default=150_000)
    m.add_argument("--v", type=int, default=1)
    m.add_argument("--c", type=int, default=10_000)
    m.add_argument("--chunk-size", type=int, default=1024)
    m.add_argument("--compressor", default="zstd")
    m.add_argument("--budget", default="1GB")
    m.add_argument("--batch-size", type=int, default=512)
    m.add_argument("--out", default="/work/runs/bench-stream.slc")
    m.add_argument("--keep", action="store_true")
    m.add_argument("--streamed-only", action="store_true", help="skip the in-memory child")
    a = sub.add_parser("accuracy")
    a.add_argument("--dataset", default="mnist1d-lt:imb=100")
    a.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    a.add_argument("--epochs", type=int, default=20)
    a.add_argument("--views", type=int, default=2)
    a.add_argument("--chunk-size", type=int, default=64)
    a.add_argument("--buffers", nargs="+", type=int, default=[2, 8])
    a.add_argument("--out", default="/work/runs/bench-stream-acc")
    args = ap.parse_args()
    report = memory_main(args) if args.cmd == "memory" else accuracy_main(args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
