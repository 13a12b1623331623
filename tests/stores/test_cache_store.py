"""Contract tests of the store layer, run on a local folder and on memory://."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pyarrow as pa
import pytest

from softlabels.errors import (
    CacheExistsError,
    CacheLockedError,
    CacheNotFoundError,
    ChecksumMismatchError,
    IncompleteCacheError,
)
from softlabels.stores.cache import ArraySpec, Cache, CacheWriter, chunk_key
from softlabels.stores.lock import LOCK_KEY

N, C, V, CHUNK = 10, 3, 2, 4


def _meta(key: str = "k") -> dict:
    return {
        "format": 1,
        "N": N,
        "C": C,
        "V": V,
        "chunk_size": CHUNK,
        "config_key": key,
        "config": {"x": key},
        "teachers": {"t": {"features": False, "classifier": True, "feature_dim": 5}},
        "class_names": ["a", "b", "c"],
        "dataset": {"fingerprint": "f" * 64, "spec": "toy", "split": "train"},
    }


SPECS = [
    ArraySpec("labels", (N,), "int32"),
    ArraySpec("views/seed", (N, V), "uint64"),
    ArraySpec("teachers/t/logits", (N, V, C), "float16"),
    ArraySpec("teachers/t/classifier/weight", (C, 5), "float32", by_row=False),
    ArraySpec("teachers/t/classifier/bias", (C,), "float32", by_row=False),
]
TABLES = {
    "samples.parquet": pa.table({"row": list(range(N))}),
    "classes.parquet": pa.table({"c": [0, 1, 2]}),
}


def _chunk(c: int) -> dict[str, np.ndarray]:
    s, e = c * CHUNK, min(N, (c + 1) * CHUNK)
    rng = np.random.default_rng(c)
    return {
        "labels": (np.arange(s, e) % C).astype(np.int32),
        "views/seed": np.arange(s * V, e * V, dtype=np.uint64).reshape(-1, V),
        "teachers/t/logits": rng.normal(size=(e - s, V, C)).astype(np.float16),
    }


@pytest.fixture(params=["local", "memory"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "c.slc")
    return f"memory://softlabels-test-{uuid.uuid4().hex}"


def _write(url: str, chunks: list[int] | None = None, key: str = "k", **kw) -> CacheWriter:
    w = CacheWriter.open(url, meta=_meta(key), specs=SPECS, tables=TABLES, **kw)
    if not w.static_done():
        w.write_static(
            {
                "teachers/t/classifier/weight": np.ones((C, 5), np.float32),
                "teachers/t/classifier/bias": np.zeros(C, np.float32),
            }
        )
    for c in w.pending_chunks() if chunks is None else chunks:
        w.write_chunk(c, _chunk(c))
    w.close()
    return w


class TestStoreContract:
    def test_round_trip(self, url: str) -> None:
        _write(url)
        cache = Cache(url)
        assert cache.is_complete() and cache.verify() == []
        full = np.concatenate([_chunk(c)["teachers/t/logits"] for c in range(3)])
        np.testing.assert_array_equal(cache.teacher("t").reader().read_all(), full)
        np.testing.assert_array_equal(np.asarray(cache.teacher("t").logits[:]), full)
        np.testing.assert_array_equal(cache.labels, np.arange(N) % C)
        w, b = cache.teacher("t").classifier
        assert w.shape == (C, 5) and b.shape == (C,)

    def test_partial_then_resume(self, url: str) -> None:
        _write(url, chunks=[0, 2])
        cache = Cache(url)
        assert cache.missing_chunks()["labels"] == [1]
        with pytest.raises(IncompleteCacheError, match="chunk 1"):
            cache.require_complete()
        w = CacheWriter.open(url, meta=_meta(), specs=SPECS, tables=TABLES)
        assert w.pending_chunks() == [1]
        w.write_chunk(1, _chunk(1))
        w.close()
        assert Cache(url).is_complete()

    def test_other_settings_refused_then_overwritten(self, url: str) -> None:
        _write(url)
        with pytest.raises(CacheExistsError, match="--overwrite"):
            CacheWriter.open(url, meta=_meta("other"), specs=SPECS, tables=TABLES)
        _write(url, key="other", overwrite=True)
        assert Cache(url).meta["config_key"] == "other"

    def test_second_writer_refused(self, url: str) -> None:
        w = CacheWriter.open(url, meta=_meta(), specs=SPECS, tables=TABLES)
        try:
            with pytest.raises(CacheLockedError):
                CacheWriter.open(url, meta=_meta(), specs=SPECS, tables=TABLES)
        finally:
            w.close()
        CacheWriter.open(url, meta=_meta(), specs=SPECS, tables=TABLES).close()

    def test_corrupt_chunk_named(self, url: str) -> None:
        _write(url)
        cache = Cache(url)
        key = chunk_key("teachers/t/logits", 1, 3)
        data = bytearray(cache.loc.read(key))
        data[len(data) // 2] ^= 0xFF
        cache.loc.fs.pipe_file(cache.loc.path(key), bytes(data))
        problems = Cache(url).verify()
        assert [(p.where, p.chunk, p.kind) for p in problems] == [
            ("teachers/t/logits", 1, "checksum")
        ]
        with pytest.raises(ChecksumMismatchError, match="chunk 1 of teachers/t/logits"):
            Cache(url).teacher("t").reader().read_chunk(1)

    def test_missing_and_damaged_table(self, url: str) -> None:
        _write(url)
        cache = Cache(url)
        cache.loc.remove(chunk_key("labels", 2, 1))
        cache.loc.fs.pipe_file(cache.loc.path("classes.parquet"), b"garbage")
        kinds = {(p.where, p.kind) for p in Cache(url).verify()}
        assert ("labels", "missing") in kinds and ("classes.parquet", "size") in kinds

    def test_damaged_manifest_record(self, url: str) -> None:
        _write(url)
        cache = Cache(url)
        cache.loc.fs.pipe_file(cache.loc.path("manifest/chunk-000001.json"), b"{not json")
        problems = Cache(url).verify()
        assert any(p.kind == "manifest" for p in problems)
        assert any(p.kind == "uncommitted" and p.chunk == 1 for p in problems)

    def test_not_a_cache(self, url: str) -> None:
        with pytest.raises(CacheNotFoundError):
            Cache(url)


def test_lock_file_of_a_dead_writer_is_simply_taken(tmp_path) -> None:
    """The OS lock died with its holder: the file it left (naming a gone pid) blocks nothing."""
    url = str(tmp_path / "c.slc")
    _write(url)
    (tmp_path / "c.slc" / LOCK_KEY).write_text(
        json.dumps({"pid": 2**22 + 12345, "host": __import__("socket").gethostname()})
    )
    CacheWriter.open(url, meta=_meta(), specs=SPECS, tables=TABLES).close()
    assert not (tmp_path / "c.slc" / LOCK_KEY).exists()


def test_non_cache_folder_is_never_touched(tmp_path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "data.txt").write_text("keep me")
    with pytest.raises(CacheExistsError, match="not a softlabels cache"):
        CacheWriter.open(str(target), meta=_meta(), specs=SPECS, tables=TABLES, overwrite=True)
    assert (target / "data.txt").read_text() == "keep me"
    assert not (target / LOCK_KEY).exists()


class TestAddTeacher:
    def test_added_teacher_has_its_own_records_and_verifies(self, url: str) -> None:
        from softlabels.stores.cache import add_teacher

        _write(url)
        logits = np.arange(N * V * C, dtype=np.float32).reshape(N, V, C)
        add_teacher(
            url,
            "t+cal",
            {"calibration": {"method": "x"}},
            {"logits": logits},
            {"classifier/weight": np.ones((C, 5), np.float32)},
        )
        cache = Cache(url)
        assert cache.teacher_names == ["t", "t+cal"]
        assert (
            cache.teacher("t+cal").info["classifier"] is True
            and cache.teacher("t+cal").info["features"] is False
        )
        np.testing.assert_array_equal(cache.teacher("t+cal").reader().read_all(), logits)
        assert cache.verify() == [] and cache.is_complete()
        assert any(name.endswith("+t+cal.json") for name in cache.manifest.records)

    def test_existing_name_needs_replace(self, url: str) -> None:
        from softlabels.stores.cache import add_teacher

        _write(url)
        rows = {"logits": np.zeros((N, V, C), np.float32)}
        add_teacher(url, "t+cal", {}, rows)
        with pytest.raises(CacheExistsError, match="--overwrite"):
            add_teacher(url, "t+cal", {}, rows)
        add_teacher(url, "t+cal", {}, {"logits": np.ones((N, V, C), np.float32)}, replace=True)
        cache = Cache(url)
        assert cache.verify() == []
        assert cache.teacher("t+cal").reader().read_all().min() == 1.0
