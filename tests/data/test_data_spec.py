from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import softlabels.data as sd
from softlabels.data import (
    REQUIRED,
    Dataset,
    Split,
    fingerprint,
    list_datasets,
    load_dataset,
    parse_dataset_spec,
    register_dataset,
)
from softlabels.data import _registry as registry
from softlabels.errors import SpecError, UsageError

BUILTINS = {
    "mnist1d-lt",
    "digits-lt",
    "cifar10-lt",
    "cifar100-lt",
    "imagenet-lt",
    "places-lt",
    "inat",
    "imagefolder",
}


def test_public_exports() -> None:
    for name in [
        "Dataset",
        "Split",
        "fingerprint",
        "load_dataset",
        "list_datasets",
        "register_dataset",
        "parse_dataset_spec",
        "longtail_counts",
        "select_longtail",
        "view_seeds",
        "augment",
        "clean",
    ]:
        assert name in sd.__all__
        assert hasattr(sd, name)


def test_builtins_listed() -> None:
    assert set(list_datasets()) >= BUILTINS
    assert list_datasets() == sorted(list_datasets())


def test_canonical_spec_fills_defaults_sorted() -> None:
    spec = parse_dataset_spec("cifar100-lt:seed=3, root=/data/c")
    assert spec.name == "cifar100-lt"
    assert spec.options == {"root": "/data/c", "imb": 100, "seed": 3}
    assert spec.canonical == "cifar100-lt:imb=100,root=/data/c,seed=3"
    assert parse_dataset_spec(spec.canonical).canonical == spec.canonical
    assert parse_dataset_spec("mnist1d-lt").canonical == (
        "mnist1d-lt:data_seed=42,imb=100,n_max=500,n_test=100,seed=0"
    )


def test_value_may_hold_colon_and_equals() -> None:
    spec = parse_dataset_spec("imagefolder:root=C:/x=y")
    assert spec.options["root"] == "C:/x=y"


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(SpecError, match=r"Unknown dataset 'cifar-lt'.*cifar100-lt.*mnist1d-lt"):
        parse_dataset_spec("cifar-lt:imb=10")


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(SpecError, match=r"Unknown key 'imbalance'.*valid keys: imb, root, seed"):
        parse_dataset_spec("cifar10-lt:root=x,imbalance=10")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("mnist1d-lt:imb=abc", r"Expected an integer, got 'abc' \(at imb"),
        ("mnist1d-lt:imb=1.5", r"Expected an integer, got '1.5'"),
        ("mnist1d-lt:imb", r"Expected key=value, got 'imb'"),
        ("mnist1d-lt:imb=3,imb=4", r"got 'imb' twice"),
        ("mnist1d-lt:=3", r"Expected an option name"),
        ("cifar10-lt", r"Expected a value for 'root'"),
        ("cifar10-lt:root=", r"Expected a non-empty value"),
        ("", r"Expected a dataset spec"),
        ("py:", r"Expected py:MODULE:CALLABLE"),
        ("py:no_such_module_xyz:f", r"Cannot import module 'no_such_module_xyz'"),
        ("py:math:no_such_fn", r"has no attribute 'no_such_fn'"),
        ("py:math:pi", r"Expected a callable"),
    ],
)
def test_spec_errors(spec: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as info:
        parse_dataset_spec(spec)
    assert "\n" not in str(info.value)


def test_spec_error_is_usage_error() -> None:
    assert issubclass(SpecError, UsageError)
    with pytest.raises(UsageError):
        load_dataset("nope")


def test_typed_values() -> None:
    table = {"toy": {"a": 1, "b": 0.5, "c": True, "d": "x", "e": REQUIRED}}
    spec = parse_dataset_spec("toy:a=-3,b=2,c=no,e=hello", registry=table)
    assert spec.options == {"a": -3, "b": 2.0, "c": False, "d": "x", "e": "hello"}
    assert spec.canonical == "toy:a=-3,b=2.0,c=false,d=x,e=hello"
    with pytest.raises(SpecError, match="Expected true or false"):
        parse_dataset_spec("toy:c=maybe,e=1", registry=table)
    with pytest.raises(SpecError, match="Expected a finite number"):
        parse_dataset_spec("toy:b=nan,e=1", registry=table)


@pytest.fixture
def toy_name() -> Iterator[str]:
    name = "toy-spec-test"
    yield name
    with registry._lock:
        registry._builders.pop(name, None)
        registry._defaults.pop(name, None)


def _toy_dataset(spec: str, n: int, bad: bool = False) -> Dataset:
    labels = np.arange(n) % 3
    if bad:
        labels[0] = 5
    x = np.arange(n, dtype=np.float32)[:, None]
    return Dataset(
        spec="ignored",
        name="toy",
        class_names=["a", "b", "c"],
        train=Split("train", [f"s{i}" for i in range(n)], labels, array=x),
        test=Split("test", [f"s{i}" for i in range(n)], labels, array=x),
        family="generic",
        recipe={"kind": "none"},
    )


def test_register_load_and_cache(toy_name: str) -> None:
    calls: list[int] = []

    @register_dataset(toy_name, defaults={"n": 6, "bad": False})
    def build(spec: str, n: int, bad: bool) -> Dataset:
        calls.append(n)
        return _toy_dataset(spec, n, bad)

    assert toy_name in list_datasets()
    ds = load_dataset(f"{toy_name}:n=9")
    assert ds.spec == f"{toy_name}:bad=false,n=9"
    assert ds.class_counts().tolist() == [3, 3, 3]
    assert load_dataset(f"{toy_name}:n=9,bad=false") is ds
    assert calls == [9]
    with pytest.raises(UsageError, match=r"Expected labels in \[0, 3\), got 5"):
        load_dataset(f"{toy_name}:n=9,bad=true")
    with pytest.raises(UsageError, match=r"Class 'c' \(id 2\) has no training samples"):
        load_dataset(f"{toy_name}:n=2")
    with pytest.raises(UsageError, match="already registered"):
        register_dataset(toy_name)(build)
    with pytest.raises(UsageError, match="already registered"):
        register_dataset("cifar10-lt")(build)


def test_register_rejects_bad_names_and_defaults() -> None:
    with pytest.raises(UsageError):
        register_dataset("Bad Name")
    with pytest.raises(UsageError):
        register_dataset("py")
    with pytest.raises(UsageError):
        register_dataset("okname", defaults={"x": [1, 2]})


def test_fingerprint_stable_and_label_sensitive() -> None:
    ids = ["a/1.png", "a/2.png", "b/3.png"]
    labels = np.array([0, 0, 1])
    fp = fingerprint(ids, labels)
    assert fp == fingerprint(list(ids), labels.astype(np.int32))
    assert len(fp) == 64
    # Pinned: the fingerprint is part of the cache format and must not drift.
    assert fp == "17d30e254e3e6ce90910463268a486f37404c88ce4fb7277b176571fde4b8108"
    assert fp != fingerprint(ids, np.array([0, 1, 1]))
    assert fp != fingerprint(["a/1.png", "b/3.png", "a/2.png"], labels)
    split = Split("train", ids, labels, array=np.zeros((3, 1), np.float32))
    assert split.fingerprint() == fp
