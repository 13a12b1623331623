"""CBD, SSD and ECL losses against direct NumPy computations (METHODS §7-§9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.errors import UsageError
from softlabels.losses import cbd, ecl, ecl_weights, ssd


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _ce_rows(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(_softmax(z)[np.arange(len(y)), y])


def _kl_rows(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    return (q * (np.log(q) - np.log(p))).sum(-1)


def _t(x):
    return torch.tensor(x)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0, 1), st.floats(1, 200))
def test_cbd_oracle(seed: int, alpha: float, b: float) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, 6)
    t1, t2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 5))
    h = rng.normal(size=(6, 8))
    vt = np.concatenate(
        [
            t1 / np.linalg.norm(t1, axis=1, keepdims=True),
            t2 / np.linalg.norm(t2, axis=1, keepdims=True),
        ],
        1,
    )
    cos = (h * vt).sum(1) / np.linalg.norm(h, axis=1) / np.linalg.norm(vt, axis=1)
    expected = (1 - alpha) * _ce_rows(z, y).mean() + alpha * b * (1 - cos).mean()
    got = cbd(
        student_logits=_t(z),
        student_features=_t(h),
        teacher_features=[_t(t1), _t(t2)],
        labels=_t(y),
        alpha=alpha,
        feat_weight=b,
    )
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_cbd_shape_mismatch_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="projection"):
        cbd(
            student_logits=torch.zeros(2, 3),
            student_features=torch.ones(2, 4),
            teacher_features=[torch.ones(2, 5)],
            labels=torch.zeros(2, dtype=torch.long),
        )


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 5), st.floats(0, 2), st.floats(0, 2))
def test_ssd_oracle(seed: int, tau: float, l1: float, l2: float) -> None:
    rng = np.random.default_rng(seed)
    zh, zs, zt = (rng.normal(size=(5, 4)) * 2 for _ in range(3))
    y = rng.integers(0, 4, 5)
    expected = (
        l1 * _ce_rows(zh, y).mean()
        + l2 * tau**2 * _kl_rows(_softmax(zt / tau), _softmax(zs / tau)).mean()
    )
    got = ssd(
        hard_logits=_t(zh),
        student_logits=_t(zs),
        teacher_logits=_t(zt),
        labels=_t(y),
        tau=tau,
        lambda_hard=l1,
        lambda_soft=l2,
    )
    assert got.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def _std_ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _ce_rows(z / z.std(-1, ddof=1, keepdims=True), y)


def _ecl_direct(cls, ref, feats, y, counts, tau, alpha, teacher=None) -> float:
    k = len(cls)
    prior = np.log(counts / counts.sum())
    sup = np.mean(
        [
            _ce_rows(r + prior, y).mean() + _ce_rows(c + prior, y).mean()
            for c, r in zip(cls, ref, strict=True)
        ]
    )
    w = [_std_ce(c, y) / _std_ce(r, y) for c, r in zip(cls, ref, strict=True)]
    logit = sum(
        (w[q] * tau**2 * _kl_rows(_softmax(cls[a] / tau), _softmax(cls[q] / tau))).mean()
        for a in range(k)
        for q in range(k)
        if a != q
    )
    feat = sum(
        (tau**2 * _kl_rows(_softmax(feats[a] / tau), _softmax(feats[q] / tau))).mean()
        for a in range(k)
        for q in range(k)
        if a != q
    )
    if teacher is not None:
        logit += sum(
            (w[q] * tau**2 * _kl_rows(_softmax(teacher / tau), _softmax(cls[q] / tau))).mean()
            for q in range(k)
        )
    return sup + alpha * (logit + feat) / (k * (k - 1))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.floats(0.5, 3), st.floats(0, 1), st.booleans())
def test_ecl_oracle(seed: int, k: int, tau: float, alpha: float, with_teacher: bool) -> None:
    rng = np.random.default_rng(seed)
    cls = [rng.normal(size=(6, 5)) * 2 for _ in range(k)]
    ref = [rng.normal(size=(6, 5)) * 2 for _ in range(k)]
    feats = [rng.normal(size=(6, 7)) for _ in range(k)]
    y = rng.integers(0, 5, 6)
    counts = np.array([50, 20, 10, 5, 2])
    teacher = rng.normal(size=(6, 5)) * 3 if with_teacher else None
    expected = _ecl_direct(cls, ref, feats, y, counts, tau, alpha, teacher)
    got = ecl(
        cls_logits=[_t(c) for c in cls],
        ref_logits=[_t(r) for r in ref],
        features=[_t(f) for f in feats],
        labels=_t(y),
        class_counts=_t(counts),
        teacher_logits=None if teacher is None else _t(teacher),
        tau=tau,
        alpha=alpha,
    )
    assert got.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_ecl_weight_large_when_cls_less_confident_than_ref() -> None:
    y = torch.tensor([0])
    # standardisation removes the scale: confidence here is the shape of the logit vector
    confident = torch.tensor([[3.0, 0.0, 0.0]])
    unsure = torch.tensor([[1.0, 0.9, 0.0]])
    assert ecl_weights(unsure, confident, y).item() > 1 > ecl_weights(confident, unsure, y).item()
    z = torch.randn(3, 3, requires_grad=True)
    assert not ecl_weights(z, z * 2, torch.tensor([0, 1, 2])).requires_grad


def test_ecl_needs_two_experts() -> None:
    z = [torch.zeros(2, 3)]
    with pytest.raises(UsageError, match="K >= 2"):
        ecl(
            cls_logits=z,
            ref_logits=z,
            features=z,
            labels=torch.zeros(2, dtype=torch.long),
            class_counts=torch.ones(3),
        )


def test_ecl_contrastive_term_adds() -> None:
    g = torch.Generator().manual_seed(0)
    cls = [torch.randn(4, 3, generator=g) for _ in range(2)]
    feats = [torch.randn(4, 6, generator=g) for _ in range(2)]
    kw = {
        "cls_logits": cls,
        "ref_logits": cls,
        "features": feats,
        "labels": torch.tensor([0, 1, 2, 0]),
        "class_counts": torch.tensor([5, 3, 1]),
    }
    assert ecl(**kw, con_weight=1.0).item() > ecl(**kw).item()
