"""KD, DiVE and BKD against direct NumPy computations (tau^2 scaling, batchmean)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.errors import UsageError
from softlabels.losses import bkd, dive, dive_target_log, kd


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _ce(z: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(_softmax(z)[np.arange(len(y)), y]).mean())


def _kl_batchmean(q: np.ndarray, p: np.ndarray) -> float:
    return float((q * (np.log(q) - np.log(p))).sum(1).mean())


def _data(seed: int, b: int = 6, c: int = 5):
    rng = np.random.default_rng(seed)
    zs = rng.normal(size=(b, c)) * 2
    zt = rng.normal(size=(b, c)) * 3
    y = rng.integers(0, c, size=b)
    counts = np.sort(rng.integers(1, 200, size=c))[::-1].copy()
    return zs, zt, y, counts


def _t(x):
    return torch.tensor(x)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 8), st.floats(0, 1))
def test_kd_oracle(seed: int, tau: float, alpha: float) -> None:
    zs, zt, y, _ = _data(seed)
    expected = (1 - alpha) * _ce(zs, y) + alpha * tau**2 * _kl_batchmean(
        _softmax(zt / tau), _softmax(zs / tau)
    )
    got = kd(student_logits=_t(zs), teacher_logits=_t(zt), labels=_t(y), tau=tau, alpha=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 8), st.sampled_from([0.5, 1.0]), st.floats(0, 1))
def test_dive_oracle(seed: int, tau: float, power: float, alpha: float) -> None:
    zs, zt, y, counts = _data(seed)
    q = _softmax(zt / tau) ** power
    q = q / q.sum(1, keepdims=True)
    prior = counts / counts.sum()
    expected = (1 - alpha) * _ce(zs + np.log(prior), y) + alpha * tau**2 * _kl_batchmean(
        q, _softmax(zs / tau)
    )
    got = dive(
        student_logits=_t(zs),
        teacher_logits=_t(zt),
        labels=_t(y),
        class_counts=_t(counts),
        tau=tau,
        power=power,
        alpha=alpha,
    )
    assert got.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 8), st.floats(0.1, 1))
def test_power_normalisation_identity(seed: int, tau: float, power: float) -> None:
    _, zt, _, _ = _data(seed)
    q = _softmax(zt / tau) ** power
    q = q / q.sum(1, keepdims=True)
    np.testing.assert_allclose(
        np.exp(dive_target_log(_t(zt), tau, power).numpy()), q, rtol=1e-5, atol=1e-7
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 8), st.floats(0, 2))
def test_bkd_oracle(seed: int, tau: float, alpha: float) -> None:
    zs, zt, y, counts = _data(seed)
    beta = 0.9999
    w = (1 - beta) / (1 - beta**counts)
    w = w / w.sum() * len(w)
    q = w[None, :] * _softmax(zt / tau)
    q = q / q.sum(1, keepdims=True)
    expected = _ce(zs, y) + alpha * tau**2 * _kl_batchmean(q, _softmax(zs / tau))
    got = bkd(
        student_logits=_t(zs),
        teacher_logits=_t(zt),
        labels=_t(y),
        class_counts=_t(counts),
        tau=tau,
        alpha=alpha,
    )
    assert got.item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_bkd_with_unit_weights_is_plain_kd_target() -> None:
    zs, zt, y, counts = _data(1)
    a = bkd(
        student_logits=_t(zs),
        teacher_logits=_t(zt),
        labels=_t(y),
        class_counts=_t(counts),
        class_weights=torch.ones(5),
    )
    b = kd(student_logits=_t(zs), teacher_logits=_t(zt), labels=_t(y), tau=2.0, alpha=0.5) * 2
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_kd_is_zero_kl_when_student_equals_teacher() -> None:
    zs, _, y, _ = _data(2)
    got = kd(student_logits=_t(zs), teacher_logits=_t(zs), labels=_t(y), alpha=1.0)
    assert got.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("fn", "kw", "match"),
    [
        (kd, {"tau": 0.0}, "tau > 0"),
        (kd, {"tau": -1.0}, "tau > 0"),
        (kd, {"alpha": 1.5}, r"alpha in \[0, 1\]"),
        (dive, {"power": 0.0}, "power"),
        (dive, {"alpha": -0.1}, "alpha"),
        (bkd, {"tau": 0.0}, "tau > 0"),
        (bkd, {"alpha": -1.0}, "alpha >= 0"),
    ],
)
def test_bad_hyper_parameters(fn, kw: dict, match: str) -> None:
    zs, zt, y, counts = _data(0)
    with pytest.raises(UsageError, match=match):
        fn(
            student_logits=_t(zs),
            teacher_logits=_t(zt),
            labels=_t(y),
            class_counts=_t(counts),
            **kw,
        )
