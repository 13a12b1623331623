"""The arrays' and groups' ``zarr.json`` the store writes itself: the bytes zarr's own
``create_array`` / ``require_group`` write, for every dtype and codec a cache uses (a whole
cache made through zarr's path: tests/teachers/test_teachers_dump_io.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

import softlabels.stores.writer as writer
from softlabels.stores._codec import COMPRESSORS
from softlabels.stores._codec import compressor as make_compressor
from softlabels.stores._fs import resolve

DTYPES = ("float16", "float32", "int32", "int64", "uint16", "uint64")
SHAPES = (((1000, 2, 10), (64, 2, 10)), ((7,), (7,)), ((3, 4), (3, 4)), ((130, 5), (64, 5)))


@pytest.mark.parametrize("name", COMPRESSORS)
def test_array_documents_are_zarr_s_own(tmp_path: Path, name: str) -> None:
    documents = writer._metadata_documents()
    assert documents is not None
    group = zarr.open_group(store=zarr.storage.LocalStore(str(tmp_path)), mode="a")
    for i, (dtype, (shape, chunks)) in enumerate((d, s) for d in DTYPES for s in SHAPES):
        codec = make_compressor(name)
        group.create_array(
            f"a{i}", shape=shape, chunks=chunks, dtype=dtype, compressors=codec, fill_value=0
        )
        want = (tmp_path / f"a{i}" / "zarr.json").read_bytes()
        assert documents.array(shape, chunks, dtype, codec) == want, (name, dtype, shape)
        # ... and zarr reads what the store writes as the array it means
        (tmp_path / f"b{i}").mkdir()
        (tmp_path / f"b{i}" / "zarr.json").write_bytes(documents.array(shape, chunks, dtype, codec))
        array = zarr.open_array(store=zarr.storage.LocalStore(str(tmp_path / f"b{i}")), mode="r")
        assert (array.shape, array.chunks, array.dtype) == (shape, chunks, np.dtype(dtype))


def test_group_document_is_zarr_s_own(tmp_path: Path) -> None:
    group = zarr.open_group(store=zarr.storage.LocalStore(str(tmp_path)), mode="a")
    group.require_group("teachers/a")
    want = (tmp_path / "teachers" / "a" / "zarr.json").read_bytes()
    assert writer._metadata_documents().group() == want
    assert json.loads(want)["node_type"] == "group"


def test_an_array_created_again_leaves_nothing_of_an_earlier_one(tmp_path: Path) -> None:
    """As zarr's ``overwrite``: files under an array path without a document are removed
    before the document is written (a chunk of another array never passes as this one's)."""
    root = tmp_path / "c"
    (root / "x" / "c" / "0").mkdir(parents=True)
    (root / "x" / "c" / "0" / "0").write_bytes(b"stale")
    (root / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    spec = writer.ArraySpec("x", (10, 3), "float32")
    writer._ensure_arrays(resolve(str(root)), 4, [spec], "zstd")
    assert not (root / "x" / "c").exists()
    doc = json.loads((root / "x" / "zarr.json").read_bytes())
    assert doc["shape"] == [10, 3] and doc["chunk_grid"]["configuration"]["chunk_shape"] == [4, 3]
