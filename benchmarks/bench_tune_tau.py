"""Benchmark of ``tune-tau``: one streaming pass over an iNaturalist-scale synthetic cache.

Builds (or reuses) a cache of N x 1 x C float16 logits with a long-tailed label profile,
written chunk by chunk with the store layer (never whole in memory), then measures in
fresh child processes, so that each peak RSS belongs to one phase only:

* ``read``: the store's raw read throughput, every chunk read, checksum-verified and
  decoded, no compute (the floor of any pass over the cache);
* ``pass``: ``softlabels.virtual_examples`` over the default grid (T = 1:10:0.5, p = 1, 0.5:
  38 points, 29 distinct T/p), with a count of the chunk reads.

With ``--topk K`` the cache is sparse instead, as ``dump --topk K`` writes it (rule
``label-profile`` v2, ``stores/topk.py``): the same float16 logits (same seed, same rows),
the teacher's rest profile fitted first on the dump's fit chunks (``stores.topk.ProfileFit``
on the float16 cast; ``[C, C]`` up to 4,096 classes, else one ``[1, C]`` row) and stored
whole, then every chunk encoded by the dump's encoder (``stores.topk.encode``: values, ids,
the rest's log-sum-exp and std; ``stores.topk.encode_chunk`` under the pairs' profiles on
every 16th row of each chunk for the measured error, which tune-tau never reads). ``read``
then reads the three top-k arrays; ``pass`` rebuilds each chunk's dense view from them and
the profile (``TeacherArrays.dense_chunks``) before the same reduction, so its time
includes that rebuild.

    python benchmarks/bench_tune_tau.py                      # N = 437,513, C = 8,142 (~7 GB)
    python benchmarks/bench_tune_tau.py --topk 20 --out /tmp/sparse.slc   # ~0.1 GB
    python benchmarks/bench_tune_tau.py --n 100000 --c 1000 --out /tmp/small.slc
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
from typing import Any

import numpy as np
from _synthetic import (
    fit_rest_profile,
    profile_fit_chunks,
    synthetic_meta,
    synthetic_tables,
    topk_specs,
)

from softlabels.stores import schema

INAT_N, INAT_C = 437_513, 8_142
ERROR_STRIDE = 16  # --topk: the measured error of each chunk uses every 16th row


def long_tail_counts(n: int, c: int, imb: float) -> np.ndarray:
    """Exponential profile (METHODS §1) scaled to sum to ``n``; every class at least 1."""
    w = (1.0 / imb) ** (np.arange(c) / max(1, c - 1))
    counts = np.maximum(1, np.floor(n * w / w.sum())).astype(np.int64)
    counts[0] += n - counts.sum()  # the rounding remainder goes to the head class
    if counts[0] < 1:
        raise SystemExit(f"cannot spread {n} samples over {c} classes")
    return counts


def build(
    url: str, n: int, c: int, chunk: int, compressor: str, seed: int = 0, topk: int | None = None
) -> dict[str, Any]:

    from softlabels.stores import topk as sparse
    from softlabels.stores.writer import ArraySpec, CacheWriter

    rng = np.random.default_rng(seed)
    counts = long_tail_counts(n, c, imb=500.0)
    labels = np.repeat(np.arange(c, dtype=np.int32), counts)
    rng.shuffle(labels)
    info = schema.TeacherInfo(
        features=False,
        classifier=False,
        dtype="float16",
        storage="dense" if topk is None else "topk",
        topk=None if topk is None else sparse.topk_info(topk, c),
    )
    kind = "" if topk is None else f"-topk{topk}"
    meta = synthetic_meta(
        n=n,
        c=c,
        v=1,
        chunk=chunk,
        key=f"bench-tune-tau-{n}-{c}-{chunk}-{compressor}-{seed}{kind}",
        config={"bench": "tune-tau", "n": n, "c": c, "chunk": chunk, "topk": topk},
        teacher=info.to_dict(),
        spec=f"synthetic-inat:n={n},c={c}",
        counts=counts,
        fmt=schema.format_for({"t": info}),
    )
    specs = [
        ArraySpec(schema.LABELS, (n,), "int32"),
        ArraySpec(schema.VIEW_SEEDS, (n, 1), "uint64"),
    ]
    if info.topk is None:
        specs.append(ArraySpec(schema.teacher_array("t", schema.LOGITS), (n, 1, c), "float16"))
    else:
        specs += topk_specs(info.topk, n=n, v=1, c=c, chunk=chunk, dtype="float16")
    tables = synthetic_tables(n, counts)
    # Logits: a random base block, rows permuted per chunk, plus a head bias and a bump at
    # the label, so chunks differ and compress like real random float16 (i.e. barely). The
    # permutations are drawn up front, so any chunk can be made again (the profile's fit).
    base = rng.normal(size=(chunk, c)).astype(np.float32) * 2.0
    head_bias = np.linspace(2.0, 0.0, c, dtype=np.float32)
    num_chunks = -(-n // chunk)
    perms = [rng.permutation(chunk) for _ in range(num_chunks)]

    def rows(ch: int) -> tuple[int, int]:
        return ch * chunk, min(n, (ch + 1) * chunk)

    def logits(ch: int) -> np.ndarray:  # float32 [rows, C]
        s, e = rows(ch)
        z = base[perms[ch][: e - s]] + head_bias
        z[np.arange(e - s), labels[s:e]] += 6.0
        return z

    t0 = time.perf_counter()
    statics: dict[str, np.ndarray] = {}
    fit_seconds = None
    if info.topk is not None:  # the rest profile first, as a dump fits it
        fit_ids = profile_fit_chunks(num_chunks, chunk, 1, c)
        table = fit_rest_profile(
            ((logits(i)[:, None, :], labels[slice(*rows(i))]) for i in fit_ids),
            c,
            topk,
            np.float16,
        )
        statics[schema.teacher_array("t", schema.TOPK_PROFILE)] = table
        fit_seconds = time.perf_counter() - t0
        print(f"  fitted the rest profile on {len(fit_ids)} chunks", file=sys.stderr, flush=True)
    w = CacheWriter.open(url, meta=meta, specs=specs, tables=tables, compressor=compressor)
    with w:
        w.write_static(statics)
        for ch in w.pending_chunks():
            s, e = w.rows(ch)
            z = logits(ch)
            data = {
                schema.LABELS: labels[s:e],
                schema.VIEW_SEEDS: np.zeros((e - s, 1), np.uint64),
            }
            if topk is None:
                data[schema.teacher_array("t", schema.LOGITS)] = z.astype(np.float16)[:, None, :]
            else:  # the dump's encoder: top-k of the float16 cast, the rest's lse and std
                values, ids, rest = sparse.encode(z.astype(np.float16)[:, None, :], topk)
                # The error row as dump measures it (against the float32 logits, under the
                # pairs' profiles), on every ERROR_STRIDE-th row only: it is most of the
                # encoding time at C = 8,142, and tune-tau never reads it.
                sub = slice(None, None, ERROR_STRIDE)
                prof = sparse.pair_profiles(table, labels[s:e][sub, None])
                error = sparse.encode_chunk(z[sub, None, :], np.float16, topk, prof)
                arrays = {
                    schema.TOPK_VALUES: values,
                    schema.TOPK_INDICES: ids,
                    schema.TOPK_REST: rest,
                    schema.TOPK_ERROR: error[schema.TOPK_ERROR],
                }
                data |= {schema.teacher_array("t", a): v for a, v in arrays.items()}
            w.write_chunk(ch, data)
            if ch % 50 == 0:
                print(f"  built chunk {ch + 1}/{w.num_chunks}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {"build_seconds": time.perf_counter() - t0}
    if fit_seconds is not None:
        out["profile_fit_seconds"] = fit_seconds
        out["profile_fit_chunks"] = len(fit_ids)
    return out


def phase_read(url: str) -> dict[str, Any]:
    from softlabels import open_cache

    cache = open_cache(url)
    teacher = cache.teacher("t")
    what = (
        (schema.TOPK_VALUES, schema.TOPK_INDICES, schema.TOPK_REST)
        if teacher.info.sparse
        else (schema.LOGITS,)
    )
    stored = sum(cache.nbytes_on_disk(schema.teacher_array("t", a)) for a in what)
    t0 = time.perf_counter()
    decoded = 0
    for a in what:
        for _s, _e, data in teacher.reader(a).iter_chunks():
            decoded += data.nbytes
    sec = time.perf_counter() - t0
    return {
        "seconds": sec,
        "stored_bytes": stored,
        "decoded_bytes": decoded,
        "stored_MBps": stored / sec / 1e6,
        "decoded_MBps": decoded / sec / 1e6,
        "rows_per_s": cache.num_samples / sec,
    }


def phase_pass(url: str, device: str) -> dict[str, Any]:
    from softlabels.analysis import DEFAULT_POWERS, DEFAULT_TAUS, virtual_examples
    from softlabels.stores.cache import ArrayReader

    reads: list[tuple[str, int]] = []
    original = ArrayReader.read_chunk

    def counting(self: ArrayReader, chunk: int, *, verify: bool = True) -> np.ndarray:
        reads.append((self.path, chunk))
        return original(self, chunk, verify=verify)

    ArrayReader.read_chunk = counting  # type: ignore[method-assign]
    import torch

    t0 = time.perf_counter()
    ve = virtual_examples(url, "t", taus=DEFAULT_TAUS, powers=DEFAULT_POWERS, device=device)
    sec = time.perf_counter() - t0
    logit_reads = [r for r in reads if r[0].endswith(("/logits", "/topk/values"))]
    return {
        "seconds": sec,
        "rows_per_s": ve.num_samples / sec,
        "grid_points": len(ve.grid),
        "distinct_tau_eff": len({g.tau_eff for g in ve.grid}),
        "softmax_elements_per_s": ve.num_samples
        * ve.num_classes
        * len({g.tau_eff for g in ve.grid})
        / sec,
        "logit_chunk_reads": len(logit_reads),
        "distinct_logit_chunks": len(set(logit_reads)),
        "torch_threads": torch.get_num_threads(),
        "rebuilt": ve.rebuilt or None,
        "choice": ve.choice.to_dict() if ve.choice else None,
        "groups": ve.groups,
    }


def _status_bytes(field: str) -> int | None:
    """A size of this process from /proc/self/status (Linux: ``VmRSS`` now, ``VmHWM`` its
    peak), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _peak_rss() -> int:
    """This process's own peak resident set size. ``VmHWM`` (of this interpreter's memory
    only) where there is one: ``ru_maxrss`` carries over the parent's peak through fork and
    exec, so after a build in the parent it would report the build's memory."""
    hwm = _status_bytes("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(phase: str, url: str, device: str) -> dict[str, Any]:
    """Run one phase in a fresh interpreter; its own peak RSS comes back with the result."""
    cmd = [sys.executable, __file__, "--phase", phase, "--out", url, "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=INAT_N, help="samples (iNat18 train: 437,513)")
    ap.add_argument("--c", type=int, default=INAT_C, help="classes (iNat18: 8,142)")
    ap.add_argument("--chunk-size", type=int, default=1024, help="rows per chunk")
    ap.add_argument("--compressor", default="zstd", help="zstd, blosc or none")
    ap.add_argument("--out", default="/tmp/softlabels-bench-tune-tau.slc", help="cache path")
    ap.add_argument("--device", default="cpu", help="device of the pass: cpu, cuda")
    ap.add_argument("--topk", type=int, default=None, help="build the cache sparse: top-K")
    ap.add_argument("--keep", action="store_true", help="keep the cache afterwards")
    ap.add_argument("--phase", choices=("read", "pass"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase:  # child process
        import torch  # noqa: F401  (imported up front: its RSS is the baseline, not the pass)
        import zarr  # noqa: F401

        import softlabels.analysis  # noqa: F401

        baseline = _status_bytes("VmRSS")
        out = phase_read(args.out) if args.phase == "read" else phase_pass(args.out, args.device)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out["peak_rss_bytes"] = _peak_rss()
        # CPU seconds of the whole child (every thread, imports included): on a shared machine
        # the figure that load barely changes, unlike the wall-clock seconds.
        out["cpu_seconds"] = usage.ru_utime + usage.ru_stime
        out["baseline_rss_bytes"] = baseline  # after importing torch, zarr and softlabels
        out["peak_growth_bytes"] = out["peak_rss_bytes"] - baseline if baseline else None
        print(json.dumps(out))
        return

    # Sparse: float16 values, 2-byte ids (C <= 65,536) and the rest's two float32 per row.
    raw = args.n * args.c * 2 if args.topk is None else args.n * (args.topk * 4 + 8)
    parent = os.path.dirname(os.path.abspath(args.out)) or "."
    free = shutil.disk_usage(parent).free
    reuse = os.path.exists(os.path.join(args.out, schema.ROOT_DOC))
    if not reuse and free < raw * 1.1:
        raise SystemExit(
            f"need ~{raw * 1.1 / 1e9:.1f} GB free in {parent}, have {free / 1e9:.1f} GB; "
            "lower --n/--c or choose another --out"
        )
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "n": args.n,
        "c": args.c,
        "chunk_size": args.chunk_size,
        "topk": args.topk,
        "logits_bytes_fp16": raw,
        "load_before": os.getloadavg(),
    }
    if reuse:
        print(f"reusing {args.out}", file=sys.stderr)
        from softlabels import open_cache
        from softlabels.stores import topk as sparse

        cache = open_cache(args.out)
        if (cache.num_samples, cache.num_classes) != (args.n, args.c):
            raise SystemExit(f"{args.out} holds another shape; remove it or choose another --out")
        cache.require_complete()
        if cache.teacher("t").info.sparse != (args.topk is not None):
            raise SystemExit(f"{args.out} is {'sparse' if args.topk is None else 'dense'}")
        stored = cache.teacher("t").info.topk
        if stored is not None and (stored.k, stored.rule, stored.rule_version) != (
            args.topk,
            sparse.RULE,
            sparse.RULE_VERSION,
        ):
            raise SystemExit(
                f"{args.out} holds top-{stored.k} under rule {stored.rule!r} v{stored.rule_version}"
                f", not top-{args.topk} under {sparse.RULE!r} v{sparse.RULE_VERSION}: remove it"
                " or choose another --out"
            )
    else:
        print(f"building {args.out} ({raw / 1e9:.2f} GB of teacher outputs)", file=sys.stderr)
        report.update(
            build(args.out, args.n, args.c, args.chunk_size, args.compressor, topk=args.topk)
        )
        report["build_peak_rss_bytes"] = _peak_rss()  # this process's, the build's
    from softlabels import open_cache

    report["bytes_on_disk"] = open_cache(args.out).nbytes_on_disk()
    report["read"] = child("read", args.out, args.device)
    report["pass"] = child("pass", args.out, args.device)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if not args.keep and not reuse:
        shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
