"""The metadata record of the benchmarks' synthetic caches (one teacher ``t``, no dataset)."""

from __future__ import annotations

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
