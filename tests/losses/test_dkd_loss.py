"""DKD against an independent NumPy computation of METHODS §11 (the reference's way:
probabilities, then the binary split by masks, and the non-target part by subtracting
1000 from the target logit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.errors import UsageError
from softlabels.losses import dkd, dkd_parts, get_loss


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _oracle(zs, zt, y, tau, alpha, beta, ce_weight):
    b, c = zs.shape
    gt = np.zeros((b, c))
    gt[np.arange(b), y] = 1.0
    ps, pt = _softmax(zs / tau), _softmax(zt / tau)
    bs = np.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], 1)
    bt = np.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], 1)
    tckd = (bt * (np.log(bt) - np.log(bs))).sum() / b * tau**2
    ns, nt = _softmax(zs / tau - 1000 * gt), _softmax(zt / tau - 1000 * gt)
    mask = nt > 0
    nckd = (nt[mask] * (np.log(nt[mask]) - np.log(ns[mask]))).sum() / b * tau**2
    ce = -np.log(_softmax(zs)[np.arange(b), y]).mean()
    return tckd, nckd, ce_weight * ce + alpha * tckd + beta * nckd


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    tau=st.sampled_from([1.0, 2.0, 4.0]),
    alpha=st.floats(0, 2),
    beta=st.floats(0, 10),
)
def test_dkd_equals_numpy(seed: int, tau: float, alpha: float, beta: float) -> None:
    rng = np.random.default_rng(seed)
    zs, zt = rng.normal(size=(7, 6)) * 2, rng.normal(size=(7, 6)) * 3
    y = rng.integers(0, 6, size=7)
    tckd, nckd, total = _oracle(zs, zt, y, tau, alpha, beta, 1.0)
    got_t, got_n = dkd_parts(torch.tensor(zs), torch.tensor(zt), torch.tensor(y), tau)
    assert got_t.item() == pytest.approx(tckd, rel=1e-4, abs=1e-6)
    assert got_n.item() == pytest.approx(nckd, rel=1e-4, abs=1e-6)
    got = dkd(
        student_logits=torch.tensor(zs),
        teacher_logits=torch.tensor(zt),
        labels=torch.tensor(y),
        tau=tau,
        alpha=alpha,
        beta=beta,
    )
    assert got.item() == pytest.approx(total, rel=1e-4, abs=1e-5)


def test_dkd_is_zero_kd_when_student_equals_teacher_and_weights_ce() -> None:
    z = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    tckd, nckd = dkd_parts(z, z.clone(), y, 4.0)
    assert tckd.item() == pytest.approx(0, abs=1e-6) and nckd.item() == pytest.approx(0, abs=1e-6)
    two = dkd(student_logits=z, teacher_logits=z, labels=y, ce_weight=2.0)
    one = dkd(student_logits=z, teacher_logits=z, labels=y, ce_weight=1.0)
    assert two.item() == pytest.approx(2 * one.item(), rel=1e-5)


def test_dkd_defaults_are_the_reference_ones() -> None:
    assert get_loss("dkd").defaults == {"tau": 4.0, "alpha": 1.0, "beta": 8.0, "ce_weight": 1.0}


@pytest.mark.parametrize("bad", [{"tau": 0.0}, {"alpha": -1.0}, {"beta": -0.5}])
def test_dkd_bad_hyper_parameters_raise(bad: dict) -> None:
    z = torch.randn(3, 4)
    with pytest.raises(UsageError, match="Expected"):
        dkd(student_logits=z, teacher_logits=z, labels=torch.tensor([0, 1, 2]), **bad)
