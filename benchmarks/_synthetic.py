"""The benchmarks' synthetic caches (one teacher ``t``, no dataset): their metadata record and
tables, and a sparse teacher's arrays and rest profile as ``dump --topk K`` writes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from softlabels.stores import schema


def synthetic_meta(
    *,
    n: int,
    c: int,
    v: int,
    chunk: int,
    key: str,
    config: dict[str, Any],
    teacher: dict[str, Any],
    spec: str,
    counts: np.ndarray,
    fmt: int,
) -> schema.CacheMeta:
    """A cache of ``n`` rows x ``v`` views x ``c`` classes holding teacher ``t`` (``teacher``:
    its TeacherInfo as a dict), with the class counts ``counts`` and a zero fingerprint."""
    return schema.CacheMeta.from_dict(
        {
            "format": fmt,
            "N": n,
            "C": c,
            "V": v,
            "chunk_size": chunk,
            "config_key": key,
            "config": config,
            "teachers": {"t": teacher},
            "class_names": [str(i) for i in range(c)],
            "dataset": {
                "fingerprint": "0" * 64,
                "spec": spec,
                "split": "train",
                "train_counts": [int(x) for x in counts],
            },
            "tune_tau": None,
        }
    )


def synthetic_tables(n: int, counts: np.ndarray) -> dict[str, Any]:
    """The samples and classes tables of such a cache (rows only; train counts per class)."""
    import pyarrow as pa

    return {
        schema.SAMPLES_TABLE: pa.table({"row": np.arange(n)}),
        schema.CLASSES_TABLE: pa.table({"class_id": np.arange(len(counts)), "train_count": counts}),
    }


def topk_specs(
    info: schema.TopKInfo, *, n: int, v: int, c: int, chunk: int, dtype: str, name: str = "t"
) -> list[Any]:
    """The arrays of a sparse teacher ``name`` (``info``: its top-k record), laid out as
    ``dump --topk K`` writes them: values, ids and rest statistics by row, the measured
    error one row per chunk, the rest profile (``topk/profile``) stored whole."""
    from softlabels.stores.writer import ArraySpec

    def path(what: str) -> str:
        return schema.teacher_array(name, what)

    return [
        ArraySpec(path(schema.TOPK_VALUES), (n, v, info.k), dtype),
        ArraySpec(path(schema.TOPK_INDICES), (n, v, info.k), info.index_dtype),
        ArraySpec(path(schema.TOPK_REST), (n, v, len(info.rest)), "float32"),
        ArraySpec(
            path(schema.TOPK_ERROR),
            (-(-n // chunk), len(info.error_columns)),
            "float32",
            per_chunk=True,
        ),
        ArraySpec(
            path(schema.TOPK_PROFILE),
            (c if info.profile == "label" else 1, c),
            "float32",
            by_row=False,
        ),
    ]


def profile_fit_chunks(num_chunks: int, chunk_rows: int, v: int, c: int) -> list[int]:
    """The chunks a dump fits a rest profile on (spread over the split, as many as its
    budget of float32 outputs holds: every chunk of a small cache)."""
    from softlabels.teachers.dump import _fit_chunks

    return _fit_chunks(num_chunks, chunk_rows * v * c * 4)


def fit_rest_profile(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], c: int, k: int, dtype: Any
) -> np.ndarray:
    """A teacher's rest profile (``topk/profile``) fitted as a dump fits it: a
    :class:`~softlabels.stores.topk.ProfileFit` over the (row, view) pairs of ``chunks``
    (``(float32 logits [rows, V, C], labels [rows])`` each), cast to the cache's ``dtype``
    first (the values the cache keeps)."""
    from softlabels.stores.topk import ProfileFit

    fit = ProfileFit(c, k)
    for logits, labels in chunks:
        fit.add(np.asarray(logits).astype(dtype), np.asarray(labels, np.int64))
    return fit.table()
