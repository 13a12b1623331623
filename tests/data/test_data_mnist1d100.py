"""mnist1d100-lt: 100 two-digit MNIST-1D classes, CIFAR-100-LT counts, pools kept on disk."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from softlabels.data import _diskcache as diskcache
from softlabels.data import clear_dataset_cache, load_dataset, longtail_counts
from softlabels.data import mnist1d100_lt as m100
from softlabels.errors import SpecError

SMALL = "mnist1d100-lt:n_max=20,n_test=2,imb=10"


@pytest.fixture(autouse=True)
def _private_disk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "disk-cache"
    monkeypatch.setenv(diskcache.CACHE_ENV, str(folder))
    m100._pools.clear()
    yield folder
    m100._pools.clear()


def _forget() -> None:
    clear_dataset_cache()
    m100._pools.clear()


def test_default_counts_are_cifar100_lt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle of METHODS.md §1 on the default spec (a stand-in pool: generating the real
    60,000 signals takes 10-20 s; the real generator is tested on small pools below)."""
    calls = []

    def fake_pool(per_class: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append((per_class, data_seed))
        y = np.random.default_rng(0).permutation(np.repeat(np.arange(100), per_class))
        return np.zeros((len(y), 1, 40), np.float32), y.astype(np.int64)

    monkeypatch.setattr(m100, "generate_pool", fake_pool)
    ds = load_dataset("mnist1d100-lt")
    assert calls == [(600, 42)]
    assert ds.spec == "mnist1d100-lt:data_seed=42,imb=100,n_max=500,n_test=100,seed=0"
    counts = ds.class_counts().tolist()
    assert counts == longtail_counts(500, 100, 100)
    assert counts[0] == 500 and counts[-1] == 5 and sum(counts) == 10_847
    assert ds.class_counts("test").tolist() == [100] * 100 and len(ds.test) == 10_000
    assert ds.class_names[0] == "00" and ds.class_names[37] == "37" and ds.num_classes == 100


def test_small_pool_from_the_real_generator(_private_disk_cache: Path) -> None:
    np.random.seed(1234)
    random.seed(99)
    np_state, py_state = np.random.get_state(), random.getstate()
    ds = load_dataset(SMALL)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    assert random.getstate() == py_state
    assert ds.class_counts().tolist() == longtail_counts(20, 100, 10)
    assert ds.class_counts("test").tolist() == [2] * 100
    assert ds.family == "signal1d" and ds.recipe["kind"] == "signal1d"
    assert set(ds.train.ids).isdisjoint(ds.test.ids)
    raw = ds.train.load(np.arange(3))
    assert raw.dtype == torch.float32 and raw.shape == (3, 1, 40)
    assert ds.input_shape == (1, 40)
    assert list(_private_disk_cache.glob("mnist1d100-*.npz"))
    # Another selection seed: the same counts and test set, other training samples.
    other = load_dataset(SMALL + ",seed=1")
    assert other.class_counts().tolist() == ds.class_counts().tolist()
    assert other.train.fingerprint() != ds.train.fingerprint()
    assert other.test.fingerprint() == ds.test.fingerprint()
    with pytest.raises(SpecError, match="n_test"):
        load_dataset("mnist1d100-lt:n_test=0")


def test_deterministic_from_its_seeds_with_or_without_the_disk_cache(
    _private_disk_cache: Path,
) -> None:
    first = load_dataset(SMALL)
    x0, fp = first.train.array.copy(), first.train.fingerprint()
    (entry,) = _private_disk_cache.glob("mnist1d100-*.npz")
    _forget()  # read back from disk
    again = load_dataset(SMALL)
    assert again is not first and again.train.fingerprint() == fp
    np.testing.assert_array_equal(again.train.array, x0)
    entry.write_bytes(entry.read_bytes()[:1000])  # a truncated entry is generated again
    _forget()
    fresh = load_dataset(SMALL)
    np.testing.assert_array_equal(fresh.train.array, x0)
    assert len(entry.read_bytes()) > 1000  # ... and replaced
    _forget()
    other = load_dataset(SMALL + ",data_seed=7")
    assert not np.array_equal(other.test.array, first.test.array)


def test_classes_sharing_a_digit_are_similar() -> None:
    t = m100.pair_templates()
    x = t["x"]
    assert x.shape == (100, 12) and t["y"].tolist() == list(range(100))
    assert np.allclose(x[:, 0], 0) and np.allclose(x[:, -1], 0)
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    a, b = np.divmod(np.arange(100), 10)
    share = (a[:, None] == a[None]) | (b[:, None] == b[None])
    np.fill_diagonal(share, False)
    none = ~share
    np.fill_diagonal(none, False)
    for k in range(100):  # every class is nearer to the 18 that share a digit than the 81 others
        assert dist[k, share[k]].mean() < dist[k, none[k]].mean(), m100.CLASS_NAMES[k]
    # Class (a, a) is digit a's template twice, resampled: it keeps digit a's shape.
    from mnist1d.data import get_templates

    digits = get_templates()["x"]
    grid, joined = np.linspace(0, 1, 12), np.linspace(0, 1, 24)
    np.testing.assert_allclose(x[33], np.interp(grid, joined, np.tile(digits[3], 2)))
    # Class (a, b) = 10 a + b is digit a, then digit b.
    np.testing.assert_allclose(x[12], np.interp(grid, joined, np.concatenate(digits[[1, 2]])))
    assert not np.allclose(x[12], x[21])


def test_disk_cache_is_keyed_checked_and_atomic(
    _private_disk_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []

    def build() -> dict[str, np.ndarray]:
        builds.append(1)
        return {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}

    got = diskcache.cached_arrays("toy", {"v": 1}, build)
    assert diskcache.cached_arrays("toy", {"v": 1}, build)["a"].tolist() == got["a"].tolist()
    assert len(builds) == 1
    diskcache.cached_arrays("toy", {"v": 2}, build)  # another key: another entry
    assert len(builds) == 2 and len(list(_private_disk_cache.glob("toy-*.npz"))) == 2
    # Concurrent writers of one entry: every reader sees a whole file, no temp file is left.
    path, text = diskcache.entry("toy", {"v": 1})
    assert path is not None and path.is_file()
    threads = [
        threading.Thread(target=diskcache._write, args=(path, text, build())) for _ in range(6)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(p.name for p in _private_disk_cache.iterdir() if p.suffix == ".tmp") == []
    assert diskcache._read(path, text)["a"].tolist() == got["a"].tolist()
    assert diskcache._read(path, text.replace("1", "3")) is None  # a foreign key is refused
    # Arrays changed behind the key: the checksum refuses them and they are built again.
    with np.load(path) as f:
        good = dict(f)
    np.savez(path, a=good["a"] + 1, __key__=good["__key__"], __sha256__=good["__sha256__"])
    assert diskcache._read(path, text) is None
    assert diskcache.cached_arrays("toy", {"v": 1}, build)["a"].tolist() == got["a"].tolist()
    assert len(builds) == 2 + 6 + 1
    # Off (empty variable) and unwritable folders still give the arrays.
    monkeypatch.setenv(diskcache.CACHE_ENV, "")
    assert diskcache.cache_dir() is None
    assert diskcache.cached_arrays("toy", {"v": 1}, build)["a"].shape == (2, 3)
    blocker = _private_disk_cache / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(diskcache.CACHE_ENV, str(blocker))
    assert diskcache.cached_arrays("toy", {"v": 1}, build)["a"].shape == (2, 3)
    monkeypatch.delenv(diskcache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(_private_disk_cache / "xdg"))
    assert diskcache.cache_dir() == _private_disk_cache / "xdg" / "softlabels"
