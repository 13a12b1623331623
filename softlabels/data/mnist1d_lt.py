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

import random
import threading
import time

import numpy as np

from softlabels.data._base import Dataset, Split
from softlabels.data._registry import register_dataset
from softlabels.data.augment import signal1d_recipe
from softlabels.data.longtail import select_longtail
from softlabels.errors import SpecError

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
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = 10 * per_class
        args.train_split = 1.0
        args.seed = int(data_seed)
        np_state = np.random.get_state()
        py_state = random.getstate()
        start = time.perf_counter()
        try:
            data = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        _timing["seconds"] = time.perf_counter() - start
        x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)[:, None, :]
        y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
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
    if imb < 1:
        raise SpecError(f"Expected imb >= 1, got {imb} (at imb)")
    if n_max < 1:
        raise SpecError(f"Expected n_max >= 1, got {n_max} (at n_max)")
    if n_test < 1:
        raise SpecError(f"Expected n_test >= 1, got {n_test} (at n_test)")
    if not 0 <= data_seed < 2**32:
        raise SpecError(f"Expected 0 <= data_seed < 2**32, got {data_seed} (at data_seed)")
    x, y = generate_pool(n_max + n_test, data_seed)
    test_mask = np.zeros(len(y), dtype=bool)
    for c in range(10):
        test_mask[np.flatnonzero(y == c)[:n_test]] = True
    test_idx = np.flatnonzero(test_mask)
    pool_idx = np.flatnonzero(~test_mask)
    keep = pool_idx[select_longtail(y[pool_idx], imb, seed=seed, n_max=n_max, num_classes=10)]
    return Dataset(
        spec=spec,
        name="mnist1d-lt",
        class_names=[str(c) for c in range(10)],
        train=Split("train", [f"pool/{i}" for i in keep.tolist()], y[keep], array=x[keep]),
        test=Split(
            "test", [f"pool/{i}" for i in test_idx.tolist()], y[test_idx], array=x[test_idx]
        ),
        family="signal1d",
        recipe=signal1d_recipe(),
    )
