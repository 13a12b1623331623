from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from softlabels.data import clear_dataset_cache, load_dataset, longtail_counts, view_seeds
from softlabels.errors import SpecError, UsageError


def test_mnist1d_lt_default_counts_and_balanced_test() -> None:
    np.random.seed(1234)
    random.seed(99)
    np_state = np.random.get_state()
    py_state = random.getstate()
    ds = load_dataset("mnist1d-lt")
    # The generator seeds the global RNGs; they must come back untouched.
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    assert random.getstate() == py_state

    counts = ds.class_counts().tolist()
    assert counts == longtail_counts(500, 10, 100)
    assert counts[0] == 500 and counts[-1] == 5
    assert sum(counts) == 1236
    assert ds.class_counts("test").tolist() == [100] * 10
    assert ds.class_names == [str(c) for c in range(10)]
    assert ds.family == "signal1d" and ds.recipe["kind"] == "signal1d"
    assert set(ds.train.ids).isdisjoint(ds.test.ids)
    src = [int(i.split("/")[1]) for i in ds.train.ids]
    assert src == sorted(src) and all(i.startswith("pool/") for i in ds.train.ids)
    raw = ds.train.load(np.arange(4))
    assert raw.dtype == torch.float32 and raw.shape == (4, 1, 40)
    assert ds.input_shape == (1, 40)
    x = ds.augment(raw, view_seeds(0, np.arange(4), 1)[:, 0])
    assert x.shape == (4, 1, 40)

    # Rebuilt from scratch (pool cached): identical; another selection seed: other samples.
    fp = ds.train.fingerprint()
    clear_dataset_cache()
    assert load_dataset("mnist1d-lt:imb=100").train.fingerprint() == fp
    other = load_dataset("mnist1d-lt:seed=1")
    assert other.class_counts().tolist() == counts
    assert other.train.fingerprint() != fp
    assert other.test.fingerprint() == ds.test.fingerprint()


def test_mnist1d_lt_small_pool() -> None:
    ds = load_dataset("mnist1d-lt:n_max=40,n_test=5,imb=10,data_seed=7")
    assert ds.class_counts().tolist() == longtail_counts(40, 10, 10)
    assert ds.class_counts("test").tolist() == [5] * 10
    with pytest.raises(SpecError, match="n_test"):
        load_dataset("mnist1d-lt:n_test=0")
    with pytest.raises(UsageError, match="no training samples"):
        load_dataset("mnist1d-lt:n_max=40,n_test=5,imb=100,data_seed=7")


def test_digits_lt() -> None:
    ds = load_dataset("digits-lt")
    assert ds.spec == "digits-lt:imb=10,n_test=50,seed=0"
    counts = ds.class_counts().tolist()
    assert counts[0] == 124 and counts == longtail_counts(124, 10, 10)
    assert ds.class_counts("test").tolist() == [50] * 10
    raw = ds.train.load(np.arange(3))
    assert raw.dtype == torch.uint8 and raw.shape == (3, 1, 8, 8)
    assert int(ds.train.array.max()) == 255
    assert ds.recipe["flip"] is False and ds.recipe["pad"] == 1
    assert ds.clean(raw).shape == (3, 1, 8, 8)
    with pytest.raises(SpecError, match="n_test"):
        load_dataset("digits-lt:n_test=500")
