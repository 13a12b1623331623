"""CPU seconds per chunk of a ``bench_tune_tau.py`` cache: the read (checksum + decode) and
tune-tau's dense kernel over the default grid (29 T/p), one thread, by ``time.thread_time``.

On a shared machine the wall clock mostly measures the other jobs; a thread's CPU time
barely changes with the load, so this compares kernels where a timed pass cannot. With
``--old FILE`` (a copy of an earlier ``softlabels/analysis/virtual.py``, e.g. from ``git
show REV:softlabels/analysis/virtual.py``) that version's kernel runs on the same chunks,
and the largest relative difference of the two results is reported.

    python benchmarks/bench_tune_tau_cost.py /tmp/softlabels-bench-tune-tau.slc --old /tmp/v.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from types import ModuleType

import numpy as np
import torch

from softlabels import open_cache
from softlabels.analysis import virtual
from softlabels.stores import schema


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("virtual_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["virtual_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache")
    ap.add_argument("--chunks", default="0,50,100,150,200,250,300,350")
    ap.add_argument("--old", help="an earlier virtual.py to compare with")
    args = ap.parse_args()
    torch.set_num_threads(1)
    effs = sorted(
        {te for _t, _p, te in virtual._grid(virtual.DEFAULT_TAUS, virtual.DEFAULT_POWERS)}
    )
    scales = [1.0 / t for t in effs]
    cache = open_cache(args.cache)
    reader = cache.teacher("t").reader(schema.LOGITS)
    c = cache.num_classes
    block = max(1, virtual._BLOCK_ELEMENTS // c)
    dev = torch.device("cpu")
    kernels = {"new": virtual._reduce_rows}
    if args.old:
        kernels["old"] = _load(args.old)._reduce_rows
    seconds: dict[str, list[float]] = {"read": []} | {k: [] for k in kernels}
    worst = 0.0
    for chunk in (int(x) for x in args.chunks.split(",")):
        t0 = time.thread_time()
        rows = reader.read_chunk(chunk).reshape(-1, c)
        seconds["read"].append(time.thread_time() - t0)
        out = {}
        for name, kernel in kernels.items():
            t0 = time.thread_time()
            out[name] = kernel(rows, 0, len(rows), scales, block, dev)
            seconds[name].append(time.thread_time() - t0)
        if "old" in out:
            rel = (out["old"] - out["new"]).abs() / out["old"].abs().clamp_min(1e-30)
            worst = max(worst, float(rel.max()))
    median = {k: float(np.median(v)) for k, v in seconds.items()}
    chunks = cache.metadata.num_chunks
    print(
        json.dumps(
            {
                "block_rows": block,
                "median_cpu_s_per_chunk": median,
                "whole_cache_cpu_s": {k: v * chunks for k, v in median.items()},
                "max_rel_diff_old_new": worst if args.old else None,
                "seconds": seconds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
