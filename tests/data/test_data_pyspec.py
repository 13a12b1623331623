from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from softlabels.data import load_dataset, parse_dataset_spec
from softlabels.errors import SpecError, UsageError

MOD = "data_pyds_fixture"


@pytest.fixture(autouse=True)
def _on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_single_dataset_with_classes() -> None:
    spec = parse_dataset_spec(f"py:{MOD}:single:n=9,scale=0.5")
    # Scalar defaults of the callable are part of the canonical spec; types follow them.
    assert spec.options == {"n": 9, "scale": 0.5, "shuffle": False}
    assert spec.canonical == f"py:{MOD}:single:n=9,scale=0.5,shuffle=false"
    ds = load_dataset(f"py:{MOD}:single:n=9,scale=0.5")
    assert ds.spec == spec.canonical
    assert ds.family == "generic" and ds.recipe["kind"] == "none"
    assert ds.class_names == ["zero", "one", "two"]
    assert ds.class_counts().tolist() == [3, 3, 3]
    assert ds.train.ids[:2] == ["train/0", "train/1"]
    raw = ds.train.load(np.array([2, 1]))
    assert raw.dtype == torch.float32 and raw.shape == (2, 2, 2)
    assert float(raw[0, 0, 0]) == 4.0  # item 2, first value 8 * 0.5
    assert torch.equal(ds.clean(raw), raw)
    assert torch.equal(ds.augment(raw, np.array([1, 2], dtype=np.uint64)), raw)
    assert len(ds.test) == len(ds.train)  # no test split given: the training data
    assert ds.input_shape == (2, 2)


def test_dict_with_train_and_test() -> None:
    ds = load_dataset(f"py:{MOD}:pair:n_train=4,tag=b")
    assert ds.spec == f"py:{MOD}:pair:n_train=4,tag=b"
    assert ds.class_names == ["0", "1"]
    assert ds.train.labels.tolist() == [0, 1, 0, 1]
    assert ds.test.ids == ["test/0", "test/1"]
    assert ds.test.array.tolist() == [[100.0] * 3, [101.0] * 3]
    assert ds.train.labels.dtype == np.int64


def test_python_spec_errors() -> None:
    with pytest.raises(SpecError, match=r"Unknown key 'bogus'.*valid keys: n, scale, shuffle"):
        parse_dataset_spec(f"py:{MOD}:single:bogus=1")
    with pytest.raises(SpecError, match="Expected an integer"):
        parse_dataset_spec(f"py:{MOD}:single:n=many")
    with pytest.raises(UsageError, match="Expected a tensor or numeric array input"):
        load_dataset(f"py:{MOD}:weird:kind=strings")
    with pytest.raises(UsageError, match="map-style dataset"):
        load_dataset(f"py:{MOD}:weird:kind=nolen")
    with pytest.raises(UsageError, match=r"Expected every input of shape \(2,\)"):
        load_dataset(f"py:{MOD}:weird:kind=shapes")
    with pytest.raises(UsageError, match="Expected an integer label"):
        load_dataset(f"py:{MOD}:weird:kind=float_label")
    with pytest.raises(UsageError, match="'train' and 'test'"):
        load_dataset(f"py:{MOD}:weird:kind=dict")
    with pytest.raises(UsageError, match=r"Class 'one' \(id 1\) has no training samples"):
        load_dataset(f"py:{MOD}:single:n=1")
