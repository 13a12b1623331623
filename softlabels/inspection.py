"""What ``softlabels inspect`` and ``softlabels verify`` compute, as plain dicts."""

from __future__ import annotations

from typing import Any

import numpy as np

from softlabels.errors import FingerprintMismatchError
from softlabels.metrics import shot_groups
from softlabels.stores.reader import Cache
from softlabels.stores.schema import Record

__all__ = ["describe", "verify"]


def describe(cache: Cache) -> dict[str, Any]:
    """Shape, teachers, dtypes, sizes on disk, completeness and class counts of a cache."""
    n = cache.num_samples
    total = cache.nbytes_on_disk()
    counts = cache.class_counts if cache.is_complete() or cache.labels_complete() else None
    teachers = []
    for name in cache.teacher_names:
        t = cache.teacher(name)
        info = t.info
        size = cache.teacher_bytes_on_disk(name)
        teachers.append(
            {
                "name": name,
                "model": info.model,
                "dtype": info.dtype,
                "storage": t.storage,
                "k": t.k,
                "logits_shape": list(t.dense_shape),  # a sparse teacher's: of its dense view
                "features_shape": list(t.features.shape) if t.features is not None else None,
                "classifier": info.classifier_kind if info.classifier else None,
                "calibration": _plain(info.calibration),
                "bytes_on_disk": size,
                "bytes_per_sample": size / max(1, n),
                "complete": cache.is_complete(name),
                **_topk(t, cache.is_complete(name)),
            }
        )
    missing = cache.missing_chunks()
    meta = cache.metadata
    out: dict[str, Any] = {
        "url": cache.url,
        "format": meta.format,
        "N": n,
        "C": cache.num_classes,
        "V": cache.num_views,
        "chunk_size": cache.chunk_size,
        "chunks": cache.num_chunks,
        "dataset": {
            "spec": meta.dataset.spec,
            "split": meta.dataset.split,
            "fingerprint": meta.dataset.fingerprint,
            "family": meta.dataset.family,
        },
        "views": _plain(meta.views),
        "teachers": teachers,
        "bytes_on_disk": total,
        "bytes_per_sample": total / max(1, n),
        "complete": not missing,
        "missing_chunks": {k: len(v) for k, v in missing.items()},
        "tune_tau": _plain(meta.tune_tau),
    }
    if cache.mixing is not None:
        out["mixing"] = _mixing(cache, not missing)
    if counts is not None:
        train_counts = np.asarray(cache.dataset.train_counts or counts)
        groups = shot_groups(train_counts)
        out["classes"] = {
            "counts_min": int(counts.min()),
            "counts_max": int(counts.max()),
            "imbalance": float(counts.max() / max(1, counts.min())),
            "groups": {g: int((groups == g).sum()) for g in ("many", "medium", "few")},
        }
    return out


def _topk(t: Any, complete: bool) -> dict[str, Any]:
    """A sparse teacher's storage and its measured error (per chunk and summed up over the
    chunks: means weighted by rows, max of the maxima); nothing for a dense teacher."""
    info = t.info.topk
    if info is None:
        return {}
    return {
        "topk": _plain(info),
        "topk_error": t.topk_error() if complete else None,
    }


def _mixing(cache: Cache, complete: bool) -> dict[str, Any]:
    """The mixed views' recipe and the fraction of (row, view) pairs that are mixed (of
    the committed chunks; None while none is)."""
    from softlabels.stores.reader import ArrayReader
    from softlabels.stores.schema import MIX_PARTNER

    reader = ArrayReader(cache, MIX_PARTNER)
    mixed = total = 0
    done = cache.manifest.committed(MIX_PARTNER)
    for chunk in sorted(done):
        part = reader.read_chunk(chunk)
        mixed += int((part >= 0).sum())
        total += part.size
    assert cache.mixing is not None
    return cache.mixing.to_dict() | {
        "fraction_mixed": mixed / total if total else None,
        "complete": complete,
    }


def _plain(record: Record | None) -> dict[str, Any] | None:
    return None if record is None else record.to_dict()


def verify(cache_url: str, dataset: str | None = None) -> dict[str, Any]:
    """Check every committed chunk's checksum, completeness and (optionally) the dataset."""
    cache = Cache(cache_url)
    problems = [p.to_dict() for p in cache.verify()]
    fingerprint: dict[str, Any] | None = None
    if dataset is not None:
        from softlabels.caches import check_dataset
        from softlabels.data import load_dataset

        ds = load_dataset(dataset)
        split = str(cache.dataset.split or "train")
        fingerprint = {
            "cache": cache.fingerprint,
            "dataset": ds.split(split).fingerprint(),
            "match": True,
        }
        try:
            check_dataset(cache, ds, split)
        except FingerprintMismatchError as exc:
            fingerprint["match"] = False
            problems.append(
                {"kind": "fingerprint", "where": "dataset", "chunk": None, "message": str(exc)}
            )
    checked = sum(len(rec.entries) for rec in cache.manifest.records.values())
    return {
        "url": cache.url,
        "ok": not problems,
        "files_checked": checked,
        "chunks": cache.num_chunks,
        "problems": problems,
        "fingerprint": fingerprint,
    }
