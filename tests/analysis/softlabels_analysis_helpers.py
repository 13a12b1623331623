"""Helpers of the analysis tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from softlabels.stores.cache import ArraySpec, CacheWriter

PNG = b"\x89PNG\r\n\x1a\n"


def cli_app() -> Any:
    """The real app, with tune-tau registered once (also before app.py registers it)."""
    from typer.main import get_command

    from softlabels.cli import analysis_cmds
    from softlabels.cli.app import app

    if "tune-tau" not in get_command(app).commands:  # type: ignore[attr-defined]
        analysis_cmds.register(app)
    return app


def long_tail_counts(c: int, n_max: int, imb: float) -> np.ndarray:
    """METHODS §1 exponential profile: n_i = int(n_max * (1/imb) ** (i / (C - 1)))."""
    return np.array([int(n_max * (1 / imb) ** (i / (c - 1))) for i in range(c)], dtype=np.int64)


def make_cache(
    url: str | Path,
    teachers: dict[str, np.ndarray],
    labels: np.ndarray,
    *,
    chunk_size: int = 8,
    train_counts: np.ndarray | None = None,
    dtype: str = "float32",
    compressor: str = "zstd",
    chunks: list[int] | None = None,
) -> str:
    """A cache written with the store layer: ``teachers`` maps names to logits [N, V, C].

    ``chunks``: commit only these row chunks (an incomplete cache); all by default.
    """
    url = str(url)
    first = next(iter(teachers.values()))
    n, v, c = first.shape
    counts = np.bincount(labels, minlength=c) if train_counts is None else train_counts
    meta: dict[str, Any] = {
        "format": 1,
        "N": n,
        "C": c,
        "V": v,
        "chunk_size": chunk_size,
        "config_key": "test",
        "config": {},
        "teachers": {t: {"features": False, "classifier": False} for t in teachers},
        "class_names": [f"c{i}" for i in range(c)],
        "dataset": {
            "fingerprint": "0" * 64,
            "spec": "synthetic",
            "split": "train",
            "train_counts": [int(x) for x in counts],
        },
        "tune_tau": None,
    }
    specs = [ArraySpec("labels", (n,), "int32"), ArraySpec("views/seed", (n, v), "uint64")]
    specs += [ArraySpec(f"teachers/{t}/logits", (n, v, c), dtype) for t in teachers]
    tables = {
        "samples.parquet": pa.table(
            {"row": np.arange(n), "sample_id": [f"s{i:04d}" for i in range(n)]}
        ),
        "classes.parquet": pa.table({"class_id": np.arange(c)}),
    }
    w = CacheWriter.open(url, meta=meta, specs=specs, tables=tables, compressor=compressor)
    with w:
        w.write_static({})
        for ch in w.pending_chunks() if chunks is None else chunks:
            s, e = w.rows(ch)
            data = {
                "labels": labels[s:e].astype(np.int32),
                "views/seed": np.zeros((e - s, v), np.uint64),
            }
            for t, z in teachers.items():
                data[f"teachers/{t}/logits"] = z[s:e].astype(dtype)
            w.write_chunk(ch, data)
    return url


def random_logits(
    n: int, v: int, c: int, labels: np.ndarray, seed: int = 0, scale: float = 3.0
) -> np.ndarray:
    """Logits that favour each sample's label, with head classes a little louder."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, v, c)) * scale
    z[np.arange(n), :, labels] += 2 * scale
    z += np.linspace(1.0, 0.0, c)  # head bias: teachers of long-tailed data lean to the head
    return z.astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def direct_v(logits: list[np.ndarray], tau: float, power: float) -> np.ndarray:
    """METHODS §5 literally: normalize(softmax(z/T) ** p), mean over views and teachers, sum over samples."""
    qs = []
    for z in logits:
        q = softmax(np.asarray(z, np.float64) / tau) ** power
        qs.append(q / q.sum(-1, keepdims=True))
    return np.mean(qs, axis=0).mean(axis=1).sum(axis=0)
