"""MNIST-1D-LT: a long-tailed subset of a freshly generated MNIST-1D pool (no download).

Spec keys: ``imb`` (default 100), ``n_max`` (head class size, default 500), ``n_test``
(test samples per class, default 100), ``seed`` (long-tailed selection, default 0),
``data_seed`` (generator seed, default 42).

The ``mnist1d`` generator makes a pool of ``10 * (n_max + n_test)`` signals (an equal
number per class, shuffled). The first ``n_test`` of each class in pool order form the
balanced test set; the rest (``n_max`` per class) is the source of the long-tailed
training set. Raw inputs are float32 ``[B, 1, 40]``; ids are ``pool/<pool index>``.
Generating the default pool (6000 signals) takes about a second on one CPU core; pools are
cached in-process.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from softlabels.data._base import Dataset
from softlabels.data._mnist1d import check_options, longtail_dataset, run_generator
from softlabels.data._registry import register_dataset

__all__ = ["generate_pool", "last_generation_seconds", "mnist1d_lt"]

_pools: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_pool_lock = threading.Lock()
_timing = {"seconds": 0.0}


def last_generation_seconds() -> float:
    """Wall time of the most recent pool generation (0.0 if none ran in this process)."""
    return _timing["seconds"]


def generate_pool(per_class: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` signals of each digit: (float32 [N, 1, 40], int64 [N]), generator order.

    The generator seeds NumPy's and Python's global RNGs; both are restored afterwards.
    """
    key = (int(per_class), int(data_seed))
    with _pool_lock:
        cached = _pools.get(key)
        if cached is not None:
            return cached
        start = time.perf_counter()
        x, y = run_generator(per_class, data_seed)
        _timing["seconds"] = time.perf_counter() - start
        x.flags.writeable = False
        y.flags.writeable = False
        _pools[key] = (x, y)
        return x, y


@register_dataset(
    "mnist1d-lt",
    defaults={"imb": 100, "n_max": 500, "n_test": 100, "seed": 0, "data_seed": 42},
)
def mnist1d_lt(spec: str, imb: int, n_max: int, n_test: int, seed: int, data_seed: int) -> Dataset:
    """Long-tailed MNIST-1D (10 classes, signals of length 40)."""
    check_options(imb, n_max, n_test, data_seed)
    return longtail_dataset(
        spec,
        "mnist1d-lt",
        [str(c) for c in range(10)],
        generate_pool(n_max + n_test, data_seed),
        imb=imb,
        n_max=n_max,
        n_test=n_test,
        seed=seed,
    )
