from __future__ import annotations

import numpy as np
import pytest

from softlabels.data import longtail_counts, select_longtail
from softlabels.errors import UsageError


def test_cifar100_imb100_oracle() -> None:
    counts = longtail_counts(500, 100, 100)
    assert sum(counts) == 10_847
    assert counts[0] == 500
    assert counts[-1] == 5
    assert counts == sorted(counts, reverse=True)


def test_cifar100_imb50_oracle() -> None:
    assert sum(longtail_counts(500, 100, 50)) == 12_608


def test_cifar10_imb100_oracle() -> None:
    counts = longtail_counts(5000, 10, 100)
    assert sum(counts) == 12_406
    assert counts[0] == 5000
    assert counts[-1] == 50


def test_counts_formula_and_edge_cases() -> None:
    assert longtail_counts(100, 5, 1) == [100] * 5
    assert longtail_counts(7, 1, 100) == [7]
    c, n, imb = 7, 300, 20.0
    assert longtail_counts(n, c, imb) == [int(n * (1 / imb) ** (i / (c - 1))) for i in range(c)]


@pytest.mark.parametrize(
    ("n_max", "c", "imb"), [(0, 10, 10), (10, 0, 10), (10, 10, 0.5), (10, 10, float("nan"))]
)
def test_counts_reject_bad_arguments(n_max: int, c: int, imb: float) -> None:
    with pytest.raises(UsageError, match="Expected"):
        longtail_counts(n_max, c, imb)


def _reference(labels: np.ndarray, imb: float, seed: int, n_max: int) -> np.ndarray:
    """The rule as the CIFAR-LT reference code writes it, loop by loop."""
    num_classes = int(labels.max()) + 1
    rng = np.random.RandomState(seed)
    chosen: list[int] = []
    for cls in range(num_classes):
        n_cls = int(n_max * (1.0 / imb) ** (cls / (num_classes - 1.0)))
        idx = np.where(labels == cls)[0]
        rng.shuffle(idx)
        chosen.extend(idx[:n_cls].tolist())
    return np.array(sorted(chosen))


@pytest.mark.parametrize(("imb", "seed"), [(100, 0), (10, 3), (50, 123)])
def test_select_matches_reference_loop(imb: int, seed: int) -> None:
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(10), 60))
    got = select_longtail(labels, imb, seed=seed)
    np.testing.assert_array_equal(got, _reference(labels, imb, seed, 60))
    assert got.dtype == np.int64
    assert np.all(np.diff(got) > 0)
    np.testing.assert_array_equal(
        np.bincount(labels[got], minlength=10), longtail_counts(60, 10, imb)
    )


def test_select_is_deterministic_and_seed_sensitive() -> None:
    labels = np.repeat(np.arange(100), 500)
    a = select_longtail(labels, 100, seed=0)
    b = select_longtail(labels, 100, seed=0)
    c = select_longtail(labels, 100, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 10_847
    assert not np.array_equal(a, c)
    assert len(c) == 10_847


def test_select_does_not_touch_global_rng() -> None:
    state = np.random.get_state()
    select_longtail(np.repeat(np.arange(10), 20), 10, seed=5)
    after = np.random.get_state()
    assert state[1].tolist() == after[1].tolist()
    assert state[2] == after[2]


def test_select_default_n_max_is_smallest_class() -> None:
    labels = np.concatenate([np.zeros(30, int), np.ones(20, int), np.full(25, 2)])
    got = select_longtail(labels, 4)
    np.testing.assert_array_equal(np.bincount(labels[got]), longtail_counts(20, 3, 4))


def test_select_keeps_all_when_class_too_small() -> None:
    labels = np.concatenate([np.zeros(5, int), np.ones(50, int)])
    got = select_longtail(labels, 2, n_max=40)
    np.testing.assert_array_equal(np.bincount(labels[got]), [5, 20])


def test_select_rejects_bad_labels() -> None:
    with pytest.raises(UsageError):
        select_longtail(np.array([0, -1, 1]), 10)
    with pytest.raises(UsageError):
        select_longtail(np.zeros((2, 2), int), 10)
    with pytest.raises(UsageError):
        select_longtail(np.array([0, 2]), 10)  # class 1 missing: no default n_max
