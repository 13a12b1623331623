"""MNIST1D100-LT: 100 classes of two-digit MNIST-1D signals, long-tailed like CIFAR-100-LT.

Class ``(a, b)``, id ``10 * a + b`` and name ``"ab"``, has one template: the ``mnist1d``
template of digit ``a`` followed by that of digit ``b`` (both start and end at 0, so the
join is continuous), linearly resampled from 24 back to the generator's usual template
length (12 points). The 100 templates go through the package's own generator
(``mnist1d.data.make_dataset`` with custom templates: padding, dilation, scaling,
translation, correlated and i.i.d. noise, shear, 40 output points), so classes that share a
digit share half their shape: ``(a, b)`` is closer to ``(a, c)`` and ``(c, b)`` than to
``(c, d)``.

Spec keys and the split are those of ``mnist1d-lt``: ``imb`` (default 100), ``n_max``
(default 500), ``n_test`` (test samples per class, default 100), ``seed`` (long-tailed
selection, default 0), ``data_seed`` (generator seed, default 42). The pool holds
``100 * (n_max + n_test)`` signals; the first ``n_test`` of each class in pool order are the
balanced test set, the long-tailed training set is selected from the rest by the rule of
METHODS.md §1. With the defaults the training counts are CIFAR-100-LT's (500 ... 5,
10,847 signals) and the test set has 10,000.

Generating the default pool (60,000 signals) takes 10-20 s on one CPU core, so pools are
kept on disk (:mod:`softlabels.data._diskcache`: ``$SOFTLABELS_CACHE_DIR``, default
``~/.cache/softlabels``; about 10 MB for the default pool) and in-process.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from softlabels.data._base import Dataset
from softlabels.data._diskcache import cached_arrays
from softlabels.data._mnist1d import (
    check_options,
    generator_args,
    longtail_dataset,
    run_generator,
)
from softlabels.data._registry import register_dataset

__all__ = ["CLASS_NAMES", "generate_pool", "mnist1d100_lt", "pair_templates"]

CLASS_NAMES = [f"{a}{b}" for a in range(10) for b in range(10)]
# Bump when the templates or the pool layout change: the disk cache is keyed on it.
GENERATOR_VERSION = 1

_pools: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_pool_lock = threading.Lock()


def _resample(values: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of ``values`` onto ``length`` evenly spaced points (ends kept)."""
    src = np.linspace(0.0, 1.0, len(values))
    return np.interp(np.linspace(0.0, 1.0, length), src, values)


def pair_templates() -> dict[str, np.ndarray]:
    """The 100 class templates in the generator's format: ``x`` [100, T], ``t`` [T], ``y``."""
    from mnist1d.data import get_templates

    digits = get_templates()
    x = np.asarray(digits["x"], dtype=np.float64)
    length = x.shape[1]
    pairs = np.stack(
        [_resample(np.concatenate([x[a], x[b]]), length) for a in range(10) for b in range(10)]
    )
    return {"x": pairs, "t": np.asarray(digits["t"]), "y": np.arange(100)}


def _mnist1d_version() -> str:
    try:
        return version("mnist1d")
    except PackageNotFoundError:  # pragma: no cover - installed from source
        return "unknown"


def generate_pool(per_class: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` signals of each of the 100 classes: (float32 [N, 1, 40], int64 [N]),
    generator order; from the in-process or disk cache when it holds them."""
    key = (int(per_class), int(data_seed))
    with _pool_lock:
        cached = _pools.get(key)
        if cached is not None:
            return cached

        def build() -> dict[str, np.ndarray]:
            x, y = run_generator(per_class, data_seed, pair_templates())
            return {"x": x, "y": y}

        arrays = cached_arrays(
            "mnist1d100",
            {
                "version": GENERATOR_VERSION,
                "mnist1d": _mnist1d_version(),
                "args": generator_args(),
                "per_class": key[0],
                "data_seed": key[1],
            },
            build,
        )
        x, y = arrays["x"], arrays["y"]
        x.flags.writeable = False
        y.flags.writeable = False
        _pools[key] = (x, y)
        return x, y


@register_dataset(
    "mnist1d100-lt",
    defaults={"imb": 100, "n_max": 500, "n_test": 100, "seed": 0, "data_seed": 42},
)
def mnist1d100_lt(
    spec: str, imb: int, n_max: int, n_test: int, seed: int, data_seed: int
) -> Dataset:
    """Long-tailed two-digit MNIST-1D (100 classes, signals of length 40)."""
    check_options(imb, n_max, n_test, data_seed)
    return longtail_dataset(
        spec,
        "mnist1d100-lt",
        CLASS_NAMES,
        generate_pool(n_max + n_test, data_seed),
        imb=imb,
        n_max=n_max,
        n_test=n_test,
        seed=seed,
    )
