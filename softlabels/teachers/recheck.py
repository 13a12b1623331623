"""``verify --teacher NAME=MODEL``: re-run a teacher on a seeded sample of cached views.

Each sampled (row, view) input is regenerated from its stored seed under the cache's view
recipe (a mixed view mixed again with its stored partner, lam and box), the model runs on it (in float32, eval mode, through the calibrated final layer for
a calibrated teacher), and its logits are compared with the stored ones: max |delta|,
top-1 agreement and ``KL(softmax(stored) || softmax(rerun))``. A view is bad when its
|delta| exceeds what the stored dtype can explain (``rtol * max(1, |z|) + atol``), which
names a cache re-dumped from another checkpoint, or replayed under another recipe.

A sparse (top-k) teacher is compared on what it stored: its K values against the rerun's
logits at the stored class ids (the |delta| and the tolerance); the KL is that of its
rebuilt distribution (the rule's dense view), so it includes the price of K.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from softlabels.errors import UsageError
from softlabels.stores.schema import TOPK_INDICES

__all__ = ["TOLERANCES", "recheck_teacher"]

# (rtol, atol) per stored dtype: float16 keeps 11 bits (relative rounding 2^-11 ~ 4.9e-4);
# the rest is CPU/GPU kernels giving other bits for other batch shapes.
TOLERANCES = {"float16": (2e-3, 1e-3), "float32": (1e-4, 1e-5)}


def _sample(n: int, v: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.random.default_rng(seed).choice(n * v, size=min(size, n * v), replace=False)
    pairs.sort()
    return pairs // v, pairs % v


def _view_inputs(
    ds: Any,
    split: Any,
    seeds: np.ndarray,
    mixes: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    rows: np.ndarray,
    cols: np.ndarray,
    strength: str,
    dev: torch.device,
) -> torch.Tensor:
    """Views (rows, cols) regenerated from their seeds, mixed ones with their stored mix."""
    from softlabels.data.mixing import Mix, mix_views

    x = ds.augment(split.load(rows).to(dev), seeds[rows, cols], strength=strength)
    if mixes is None:
        return x
    partner, lam, box = mixes
    mix = Mix(partner[rows, cols], lam[rows, cols], box[rows, cols])
    v = cols[mix.mixed]

    def partner_views(partners: np.ndarray) -> torch.Tensor:
        return ds.augment(split.load(partners).to(dev), seeds[partners, v], strength=strength)

    return mix_views(x, mix, partner_views)


def recheck_teacher(
    cache_url: str,
    dataset: str,
    name: str,
    model: str,
    *,
    sample: int = 256,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Compare ``model``'s outputs with teacher ``name``'s cached ones on sampled views."""
    from softlabels.caches import check_dataset, open_cache
    from softlabels.data import load_dataset
    from softlabels.device import resolve_device
    from softlabels.students.online import load_online_teacher

    if sample < 1:
        raise UsageError(f"Expected --sample >= 1, got {sample}")
    cache = open_cache(cache_url)
    if name not in cache.teacher_names:
        raise UsageError(
            f"Expected --teacher NAME among {', '.join(cache.teacher_names)}, got {name!r}"
        )
    ds = load_dataset(dataset)
    split_name = cache.dataset.split or "train"
    check_dataset(cache, ds, split_name)
    split = ds.split(split_name)
    dev = resolve_device(device)
    teacher = load_online_teacher(cache, name, ds, dev, model)
    views = cache.views
    augmented = views.mode == "augmented"
    arrays = cache.teacher(name)
    n, v, _c = arrays.dense_shape
    rows, cols = _sample(n, v, sample, seed)
    seeds = cache.read_view_seeds()
    mixes = cache.read_mix() if augmented else None
    uniq, where = np.unique(rows, return_inverse=True)
    stored = arrays.dense_logits(uniq)[where, cols]  # a sparse teacher's: its dense view
    kept = None  # a sparse teacher's stored class ids of each sampled view
    if arrays.info.sparse:
        kept = arrays.read_rows(TOPK_INDICES, uniq)[where, cols].astype(np.int64)
    rerun = []
    with torch.inference_mode():
        for lo in range(0, len(rows), batch_size):
            r, c = rows[lo : lo + batch_size], cols[lo : lo + batch_size]
            raw = split.load(r).to(dev)
            x = (
                _view_inputs(ds, split, seeds, mixes, r, c, views.strength or "standard", dev)
                if augmented
                else ds.clean(raw)
            )
            z, feats = teacher.model.forward(x.float())
            if teacher.head is not None:
                z = teacher.head(feats.float())
            rerun.append(z.float().cpu())  # sync: one per batch
    fresh = torch.cat(rerun).numpy()
    dtype = str(arrays.info.dtype or "float16")
    rtol, atol = TOLERANCES.get(dtype, TOLERANCES["float16"])
    if kept is None:
        ref, got = stored, fresh
    else:  # only the stored values: the rerun's logits at the stored ids
        ref, got = (np.take_along_axis(a, kept, 1) for a in (stored, fresh))
    delta = np.abs(got - ref)
    bad = np.flatnonzero((delta > rtol * np.maximum(1.0, np.abs(ref)) + atol).any(axis=1))
    kl = F.kl_div(
        F.log_softmax(torch.from_numpy(fresh), -1),
        F.log_softmax(torch.from_numpy(stored), -1),
        reduction="none",
        log_target=True,
    ).sum(-1)
    ids = cache.sample_ids()
    return {
        "url": cache.url,
        "teacher": name,
        "model": model,
        "dtype": dtype,
        "storage": arrays.storage,
        "tolerance": {"rtol": rtol, "atol": atol},
        "sampled": len(rows),
        "max_abs_delta": float(delta.max()) if len(delta) else 0.0,
        "top1_agreement": float((fresh.argmax(1) == stored.argmax(1)).mean()),
        "kl_mean": float(kl.mean()),
        "kl_max": float(kl.max()),
        "ok": len(bad) == 0,
        "bad": [
            {"row": int(rows[i]), "view": int(cols[i]), "sample_id": str(ids[rows[i]]),
             "max_abs_delta": float(delta[i].max())}
            for i in bad
        ],
    }  # fmt: skip
