"""BKD's deferred re-weighting switches on exactly at ``drw_epoch`` (0-based: the epochs
before it use the plain KD target, from it on the effective-number weights), and plain BKD
(no ``drw_epoch``) is weighted from the first epoch.

Every recorded per-epoch loss is recomputed here, in numpy, from the inputs the student
really saw (read off with a forward pre-hook and matched to their cached (row, view)), the
cached targets of those views and the weights computed here; the student *is* the teacher
(negligible learning rate), so the unweighted KL term is 0 and the weighted one is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from softlabels_wiring_helpers import (
    CLASSES,
    DATA,
    SEED,
    SIGNAL,
    TINY_LR,
    identify,
    losses,
    replay_table,
    state_dict,
    training_inputs,
)

import softlabels
from softlabels.models import create_model
from softlabels.students import StudentSpec, distill

EPOCHS = 4
DRW = 2
BATCH = 32
TAU, ALPHA, BETA = 2.0, 1.0, 0.9999  # BKD's documented defaults


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _effective_number_weights(counts: np.ndarray) -> np.ndarray:
    w = (1 - BETA) / (1 - BETA ** counts.astype(np.float64))
    return w / w.sum() * len(counts)


def _bkd_loss(z: np.ndarray, zt: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """CE(z, y) + a T^2 KL(normalize(w softmax(zt / T)) || softmax(z / T)), batch mean."""
    ce = -_log_softmax(z)[np.arange(len(y)), y].mean()
    q = w[None, :] * np.exp(_log_softmax(zt / TAU))
    q /= q.sum(axis=1, keepdims=True)
    kl = (q * (np.log(q) - _log_softmax(z / TAU))).sum(axis=1).mean()
    return float(ce + ALPHA * TAU * TAU * kl)


def _spec(name: str, drw_epoch: int | None) -> StudentSpec:
    return StudentSpec(
        name=name,
        model="mlp",
        method="bkd",
        teacher="t",
        drw_epoch=drw_epoch,
        lr=TINY_LR,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
    )


def test_bkd_reweighting_starts_exactly_at_drw_epoch(
    views_cache: str, mlp_teacher: Path, tmp_path: Path, dataset
) -> None:
    cache = softlabels.open_cache(views_cache)
    cached = np.asarray(cache.teacher("t").logits[...], dtype=np.float64)
    labels = np.asarray(cache.labels)
    table, views = replay_table(views_cache)
    out = tmp_path / "run"
    with training_inputs() as seen:  # both students share the pass: each batch twice
        distill(
            views_cache,
            DATA,
            [_spec("drw", DRW), _spec("plain", None)],
            out,
            device="cpu",
            plots=False,
            evaluate_teachers=False,
        )
    steps = cache.num_samples // BATCH
    assert len(seen) == 2 * EPOCHS * steps
    for a, b in zip(seen[0::2], seen[1::2], strict=True):
        assert torch.equal(a, b), "the two students of one pass saw different batches"
    batches = seen[0::2]
    replayed = identify(batches, table, views)

    teacher = create_model("mlp", num_classes=CLASSES, in_channels=1, in_features=SIGNAL)
    teacher.load_state_dict(state_dict(mlp_teacher))
    teacher.eval()
    with torch.no_grad():  # the student's logits: it is the teacher
        logits = [teacher(x.reshape(-1, 1, SIGNAL)).double().numpy() for x in batches]

    weights = _effective_number_weights(dataset.class_counts("train"))
    ones = np.ones(len(weights))

    def epoch_loss(epoch: int, w: np.ndarray) -> float:
        part = slice(epoch * steps, (epoch + 1) * steps)
        return float(
            np.mean(
                [
                    _bkd_loss(z, cached[rows, v], labels[rows], w)
                    for z, (rows, v) in zip(logits[part], replayed[part], strict=True)
                ]
            )
        )

    unweighted = [epoch_loss(e, ones) for e in range(EPOCHS)]
    weighted = [epoch_loss(e, weights) for e in range(EPOCHS)]
    # The weights are visible in every epoch: a switch one epoch early or late would show.
    for e in range(EPOCHS):
        assert weighted[e] - unweighted[e] > 1e-2, (e, weighted[e], unweighted[e])

    drw = losses(out / "metrics.parquet", "drw")
    expected = [unweighted[e] if e < DRW else weighted[e] for e in range(EPOCHS)]
    assert drw == pytest.approx(expected, rel=1e-5), (
        f"BKD with drw_epoch={DRW}: recorded {drw}, expected {expected} "
        f"(unweighted {unweighted}, weighted {weighted})"
    )
    plain = losses(out / "metrics.parquet", "plain")
    assert plain == pytest.approx(weighted, rel=1e-5)
