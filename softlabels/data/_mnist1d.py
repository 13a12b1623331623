"""What the MNIST-1D-based datasets share: the generator call and the long-tailed split.

One call of the ``mnist1d`` package's generator leaves the global RNGs as they were:

``mnist1d.data.make_dataset`` seeds NumPy's and Python's global RNGs, draws
``num_samples // len(templates)`` signals per template (padding, dilation, scaling,
translation, correlated and i.i.d. noise, shear, resampling to 40 points), shuffles them and
standardises the whole set; both RNG states are restored afterwards, so building a dataset
never changes the caller's random stream.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from softlabels.data._base import Dataset, Split
from softlabels.data.augment import signal1d_recipe
from softlabels.data.longtail import hold_out_per_class, select_longtail
from softlabels.errors import SpecError

__all__ = ["check_options", "generator_args", "longtail_dataset", "run_generator"]


def generator_args() -> dict[str, Any]:
    """The generator's default arguments (``mnist1d.data.get_dataset_args``) as a dict."""
    from mnist1d.data import get_dataset_args

    return dict(get_dataset_args(as_dict=True))


def run_generator(
    per_class: int, data_seed: int, templates: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` signals of every template: (float32 [N, 1, L], int64 [N]), generator order.

    ``templates`` is a dict like ``mnist1d.data.get_templates()`` (``x`` [K, T], ``t`` [T],
    ``y`` [K]); None uses the package's ten digit templates.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    k = 10 if templates is None else len(templates["y"])
    args.num_samples = k * int(per_class)
    args.train_split = 1.0
    args.seed = int(data_seed)
    if templates is not None:
        args.template_len = int(templates["x"].shape[1])
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        data = make_dataset(args, template=templates)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)[:, None, :]
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return x, y


def check_options(imb: int, n_max: int, n_test: int, data_seed: int) -> None:
    """The options every MNIST-1D-based dataset shares."""
    if imb < 1:
        raise SpecError(f"Expected imb >= 1, got {imb} (at imb)")
    if n_max < 1:
        raise SpecError(f"Expected n_max >= 1, got {n_max} (at n_max)")
    if n_test < 1:
        raise SpecError(f"Expected n_test >= 1, got {n_test} (at n_test)")
    if not 0 <= data_seed < 2**32:
        raise SpecError(f"Expected 0 <= data_seed < 2**32, got {data_seed} (at data_seed)")


def longtail_dataset(
    spec: str,
    name: str,
    class_names: list[str],
    pool: tuple[np.ndarray, np.ndarray],
    *,
    imb: int,
    n_max: int,
    n_test: int,
    seed: int,
) -> Dataset:
    """A long-tailed train / balanced test dataset from a generated pool (``n_max + n_test``
    signals per class): the first ``n_test`` of each class in pool order are the test set,
    the long-tailed training set is selected from the rest. Ids are ``pool/<index>``."""
    x, y = pool
    c = len(class_names)
    test_idx, pool_idx = hold_out_per_class(y, n_test, c)
    keep = pool_idx[select_longtail(y[pool_idx], imb, seed=seed, n_max=n_max, num_classes=c)]
    return Dataset(
        spec=spec,
        name=name,
        class_names=list(class_names),
        train=Split("train", [f"pool/{i}" for i in keep.tolist()], y[keep], array=x[keep]),
        test=Split(
            "test", [f"pool/{i}" for i in test_idx.tolist()], y[test_idx], array=x[test_idx]
        ),
        family="signal1d",
        recipe=signal1d_recipe(),
    )
