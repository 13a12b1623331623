"""Digits-LT: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), long-tailed.

Spec keys: ``imb`` (default 10), ``n_test`` (test samples per class, default 50), ``seed``
(long-tailed selection, default 0). The first ``n_test`` samples of each class in source
order form the balanced test set; the long-tailed training set is selected from the rest
with ``n_max`` = the smallest remaining class count (so every class gets its full quota).
Raw inputs are uint8 ``[B, 1, 8, 8]`` (pixel values 0..16 scaled to 0..255); ids are
``pool/<source index>``.
"""

from __future__ import annotations

import numpy as np

from softlabels.data._base import Dataset, Split
from softlabels.data._registry import register_dataset
from softlabels.data.augment import small_image_recipe
from softlabels.data.longtail import hold_out_per_class, select_longtail
from softlabels.errors import SpecError

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "digits_lt", "load_digits_uint8"]

DIGITS_MEAN = (0.3053,)
DIGITS_STD = (0.3759,)


def load_digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (uint8 [N, 1, 8, 8], int64 [N]) in source order."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.round(np.asarray(data.images, dtype=np.float64) * (255.0 / 16.0))
    return images.astype(np.uint8)[:, None], np.asarray(data.target, dtype=np.int64)


@register_dataset("digits-lt", defaults={"imb": 10, "n_test": 50, "seed": 0})
def digits_lt(spec: str, imb: int, n_test: int, seed: int) -> Dataset:
    """Long-tailed 8x8 digits (10 classes)."""
    if imb < 1:
        raise SpecError(f"Expected imb >= 1, got {imb} (at imb)")
    x, y = load_digits_uint8()
    smallest = int(np.bincount(y, minlength=10).min())
    if not 1 <= n_test < smallest:
        raise SpecError(f"Expected 1 <= n_test < {smallest}, got {n_test} (at n_test)")
    test_idx, pool_idx = hold_out_per_class(y, n_test, 10)
    keep = pool_idx[select_longtail(y[pool_idx], imb, seed=seed, num_classes=10)]
    return Dataset(
        spec=spec,
        name="digits-lt",
        class_names=[str(c) for c in range(10)],
        train=Split("train", [f"pool/{i}" for i in keep.tolist()], y[keep], array=x[keep]),
        test=Split(
            "test", [f"pool/{i}" for i in test_idx.tolist()], y[test_idx], array=x[test_idx]
        ),
        family="image",
        recipe=small_image_recipe(DIGITS_MEAN, DIGITS_STD, pad=1, flip=False),
    )
