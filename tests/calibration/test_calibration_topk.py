"""Calibrating a sparse (top-k) teacher: the result keeps the source's storage and K, and
holds the top-k of the logits a dense twin's calibration stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from softlabels_calibration_helpers import BATCH, CHUNK, DATASET

import softlabels
from softlabels.calibration import calibrate
from softlabels.stores import schema
from softlabels.stores import topk as T
from softlabels.teachers import DumpConfig, dump, parse_teacher

K = 4
KW = {"epochs": 2, "lr": 0.1, "batch_size": 64, "seed": 7}


def _dump(out: Path, dtype: str, topk: int | None = None, **kw: Any) -> Path:
    teachers = (parse_teacher("a=cnn1d"),)
    config = DumpConfig(
        DATASET, teachers, chunk_size=CHUNK, batch_size=BATCH, dtype=dtype, topk=topk, **kw
    )
    dump(config, str(out), device="cpu")
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_calibrate_keeps_storage_and_k(tmp_path: Path, dtype: str) -> None:
    sparse = _dump(tmp_path / "sparse.slc", dtype, topk=K)
    dense = _dump(tmp_path / "dense.slc", dtype)  # the same features, so the same fit
    for path in (sparse, dense):
        calibrate(str(path), "a", "lws", **KW)
    c = softlabels.open_cache(str(sparse))
    t = c.teacher("a+lws")
    assert (t.storage, t.k, t.info.topk.rule) == ("topk", K, T.RULE)
    assert t.info.calibration is not None and t.info.calibration.method == "lws"
    assert c.metadata.format == 3 and c.verify() == []
    assert not (sparse / "teachers" / "a+lws" / "logits").exists()
    # the top-k of the logits the dense twin's calibration stores (in the cache's dtype)
    cast = softlabels.open_cache(str(dense)).teacher("a+lws").reader(schema.LOGITS).read_all()
    assert cast.dtype == np.dtype(dtype)
    order = np.argsort(-cast.astype(np.float32), axis=-1, kind="stable")[..., :K]
    ids = t.reader(schema.TOPK_INDICES).read_all()
    assert np.array_equal(ids, order)
    values = t.reader(schema.TOPK_VALUES).read_all()
    assert values.dtype == np.dtype(dtype)
    assert np.array_equal(values, np.take_along_axis(cast, order, -1))
    if dtype != "float32":
        return
    # and its error, measured against the calibrated float32 logits, chunk by chunk
    z32 = cast
    errors = t.reader(schema.TOPK_ERROR).read_all()
    rest = t.reader(schema.TOPK_REST).read_all()
    # under the rest profile fitted on every calibrated row (its own, not the source's)
    table = t.rest_profile()
    np.testing.assert_allclose(table, T.fit_profile(cast, K, c.labels), atol=1e-6)
    assert not np.allclose(table, c.teacher("a").rest_profile(), atol=1e-3)
    for chunk in range(c.num_chunks):
        rows = slice(chunk * c.chunk_size, (chunk + 1) * c.chunk_size)
        prof = T.pair_profiles(table, c.labels[rows, None])
        want = T.chunk_error(z32[rows], values[rows], ids[rows], rest[rows], prof)
        np.testing.assert_array_equal(errors[chunk], want)


def test_calibrating_mixed_views_fits_and_measures_with_the_partners_labels(
    tmp_path: Path,
) -> None:
    """On a cache of mixed views the calibrated teacher's profile counts a mixed view for
    its partner's label too, and its error is measured under the pairs' mixed profiles."""
    mix = {"views": 2, "mixup": 0.4, "cutmix": 1.0, "mix_prob": 0.7}
    sparse = _dump(tmp_path / "sparse.slc", "float32", topk=K, **mix)
    dense = _dump(tmp_path / "dense.slc", "float32", **mix)
    for path in (sparse, dense):
        calibrate(str(path), "a", "lws", **KW)
    c = softlabels.open_cache(str(sparse))
    t = c.teacher("a+lws")
    z32 = softlabels.open_cache(str(dense)).teacher("a+lws").reader(schema.LOGITS).read_all()
    partner, lam, _box = c.read_mix()
    labels = c.labels
    other = labels[np.where(partner >= 0, partner, np.arange(len(labels))[:, None])]
    assert ((partner >= 0) & (other != labels[:, None])).sum() > 10
    table = t.rest_profile()
    np.testing.assert_allclose(table, T.fit_profile(z32, K, labels, other, lam), atol=1e-6)
    assert not np.allclose(table, T.fit_profile(z32, K, labels), atol=1e-3)
    prof = lam[..., None] * table[labels][:, None] + (1 - lam[..., None]) * table[other]
    values, ids, rest, errors = (
        t.reader(w).read_all()
        for w in (schema.TOPK_VALUES, schema.TOPK_INDICES, schema.TOPK_REST, schema.TOPK_ERROR)
    )
    for chunk in range(c.num_chunks):
        rows = slice(chunk * c.chunk_size, (chunk + 1) * c.chunk_size)
        want = T.chunk_error(z32[rows], values[rows], ids[rows], rest[rows], prof[rows])
        np.testing.assert_allclose(errors[chunk], want, rtol=1e-5, atol=1e-9)
