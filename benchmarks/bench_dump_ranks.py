"""Scale-out of ``softlabels dump`` (issue 8): the same dump by 1 process and by N under torchrun.

    .venv/bin/python benchmarks/bench_dump_ranks.py                  # resnet32, digits-lt, 8 views
    .venv/bin/python benchmarks/bench_dump_ranks.py --nproc 4 --device cuda --repeats 5

Three configurations, each a fresh cache in a temporary folder, run as separate processes
(so every run pays its own interpreter start and model load) and alternated ``--repeats``
times after one warm-up round:

* ``1 proc``: ``python -m softlabels dump ...`` with the machine's default thread count;
* ``1 proc, 1 thread``: the same with ``OMP_NUM_THREADS=1`` (what torchrun gives each worker);
* ``N procs``: ``python -m torch.distributed.run --standalone --nproc_per_node=N -m softlabels
  dump ...`` (gloo on the CPU, one GPU per rank with ``--device cuda``).

Two times per run: the dump's own ``seconds`` (from ``dump()`` entry to the result, rank 0's
under torchrun, so it includes waiting for the slowest rank) and the wall time of the whole
command (interpreter start, torchrun's rendezvous). Medians, minima and the ratios
``t_N / t_1`` are printed, then one JSON line. Every cache is checked to be byte-identical
to the first 1-thread cache (the bytes of CPU kernels can depend on the thread count; see
the README).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def dump_args(a: argparse.Namespace, out: str) -> list[str]:
    return [
        "dump",
        "--dataset",
        a.dataset,
        "--teacher",
        f"t={a.teacher}",
        "--views",
        str(a.views),
        "--chunk-size",
        str(a.chunk_size),
        "--batch-size",
        str(a.batch_size),
        "--device",
        a.device,
        "--out",
        out,
        "--json",
    ]


def run_once(a: argparse.Namespace, kind: str, out: str) -> dict[str, float]:
    env = dict(os.environ)
    if kind == "1":
        cmd = [sys.executable, "-m", "softlabels", *dump_args(a, out)]
    elif kind == "1t":
        env["OMP_NUM_THREADS"] = "1"
        cmd = [sys.executable, "-m", "softlabels", *dump_args(a, out)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={a.nproc}",
            "-m",
            "softlabels",
            *dump_args(a, out),
        ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    return {"seconds": float(result["seconds"]), "wall": wall}


def same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def load() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "?"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="digits-lt")
    p.add_argument("--teacher", default="resnet32")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    kinds = ["1", "1t", "n"]
    names = {"1": "1 proc", "1t": "1 proc, 1 thread", "n": f"{a.nproc} procs"}
    times: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    tmp = tempfile.mkdtemp(prefix="bench-ranks-")
    identical = True  # the N-proc and 1-thread caches vs the first 1-thread cache
    identical_default = True  # the caches of 1 process with default threads vs that one
    load_before = load()
    try:
        first = None
        for r in range(a.repeats + 1):  # round 0 warms up caches (files, page cache)
            for k in kinds if r % 2 == 0 else list(reversed(kinds)):
                out = os.path.join(tmp, f"{k}-{r}.slc")
                t = run_once(a, k, out)
                if k == "1t" and first is None:
                    first = out
                elif first is not None:
                    if k == "1":
                        identical_default &= same_tree(first, out)
                    else:
                        identical &= same_tree(first, out)
                if r > 0:
                    times[k].append(t)
                    print(
                        f"round {r} {names[k]:>18}: dump {t['seconds']:.2f} s, wall {t['wall']:.2f} s"
                    )
                if out != first:
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def stat(k: str, key: str, fn: Any) -> float:
        return float(fn([t[key] for t in times[k]]))

    summary: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "config": vars(a),
        "load_before": load_before,
        "load_after": load(),
        "identical_bytes": identical,
        "identical_bytes_default_threads": identical_default,
    }
    print()
    for key in ("seconds", "wall"):
        for k in kinds:
            med, low = stat(k, key, statistics.median), stat(k, key, min)
            summary[f"{k}_{key}_median"] = med
            summary[f"{k}_{key}_min"] = low
            print(f"{key:>7} {names[k]:>18}: median {med:7.2f} s, min {low:7.2f} s")
        for base in ("1", "1t"):
            ratio = stat("n", key, statistics.median) / stat(base, key, statistics.median)
            summary[f"ratio_{key}_n_over_{base}"] = ratio
            print(f"{key:>7} ratio {names['n']} / {names[base]} (medians): {ratio:.3f}")
    print(f"{names['n']} caches identical to the 1-thread one-process cache: {identical}")
    print(f"default-thread caches identical to it too: {identical_default}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
