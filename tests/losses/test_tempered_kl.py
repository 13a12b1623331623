"""The fused tempered KL (``losses._kl``): value and gradient against an independent NumPy
computation and against the plain autograd composition, gradcheck, edge cases, and every
loss that uses it against its former autograd composition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.losses import bkd, dive, dive_target_log, dkd_parts, ecl, kd, ssd
from softlabels.losses._checks import log_prior
from softlabels.losses._kl import tempered_kl, tempered_kl_logits
from softlabels.losses.baselines import effective_number_weights
from softlabels.losses.bkd import bkd_target_log

# ---------------------------------------------------------------- references


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def _np_loss_and_grad(
    z: np.ndarray,
    log_q: np.ndarray,
    tau: float,
    w: np.ndarray | None,
    kl_weight: float,
    labels: np.ndarray | None,
    ce_weight: float,
    offset: np.ndarray | None,
) -> tuple[float, np.ndarray]:
    """The loss and its gradient, by hand in float64: the definition and the closed form."""
    b, c = z.shape
    w = np.ones(b) if w is None else w
    log_p = _np_log_softmax(z / tau)
    q = np.exp(log_q)
    safe = np.where(q > 0, log_q, 0.0)
    kl_rows = np.where(q > 0, q * (safe - log_p), 0.0).sum(1)
    loss = kl_weight * tau**2 * (w * kl_rows).sum() / b
    grad = kl_weight * tau * w[:, None] * (np.exp(log_p) - q) / b
    if labels is not None:
        log_s = _np_log_softmax(z + (0.0 if offset is None else offset[None, :]))
        loss += ce_weight * -log_s[np.arange(b), labels].mean()
        onehot = np.eye(c)[labels]
        grad += ce_weight * (np.exp(log_s) - onehot) / b
    return float(loss), grad


def _autograd_loss(z, log_q, tau, w, kl_weight, labels, ce_weight, offset):
    """The plain composition the fused op replaces (what kd/dive/bkd/ecl computed before)."""
    log_p = F.log_softmax(z / tau, dim=-1)
    rows = (torch.xlogy(log_q.exp(), log_q.exp()) - log_q.exp() * log_p).sum(-1)
    kl = (rows * (1 if w is None else w)).mean() * tau * tau
    out = kl_weight * kl
    if labels is not None:
        out = out + ce_weight * F.cross_entropy(z + (0 if offset is None else offset), labels)
    return out


def _case(seed: int, b: int, c: int, dtype: torch.dtype, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(b, c, generator=g, dtype=torch.float64) * scale).to(dtype)
    t = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    w = torch.rand(b, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, c, (b,), generator=g)
    off = torch.randn(c, generator=g, dtype=torch.float64)
    return z, t.to(dtype), w.to(dtype), y, off.to(dtype)


# ---------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    b=st.integers(1, 9),
    c=st.integers(2, 12),
    tau=st.floats(0.5, 8.0),
    target_tau=st.floats(0.5, 16.0),
    weighted=st.booleans(),
    from_logits=st.booleans(),
    with_ce=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_value_and_gradient_equal_numpy_and_autograd(
    seed, b, c, tau, target_tau, weighted, from_logits, with_ce, dtype
) -> None:
    z, t, w, y, off = _case(seed, b, c, dtype)
    kl_weight, ce_weight = 0.7, 0.3
    w = w if weighted else None
    labels = y if with_ce else None
    offset = off if with_ce and seed % 2 else None
    # the target (teacher at its own temperature), in float64 for the oracles
    log_q = F.log_softmax(t.double() / target_tau, dim=-1)
    zg = z.clone().requires_grad_(True)
    kw = {"weights": w, "kl_weight": kl_weight, "labels": labels, "ce_weight": ce_weight}
    if from_logits:
        got = tempered_kl_logits(t, zg, tau, target_tau=target_tau, ce_offset=offset, **kw)
    else:
        got = tempered_kl(log_q.to(dtype), zg, tau, ce_offset=offset, **kw)
    (grad,) = torch.autograd.grad(got, zg)
    assert got.dtype == dtype and grad.dtype == dtype

    def np_or_none(x):
        return None if x is None else x.double().numpy()

    want, want_grad = _np_loss_and_grad(
        z.double().numpy(),
        log_q.numpy(),
        tau,
        np_or_none(w),
        kl_weight,
        None if labels is None else labels.numpy(),
        ce_weight,
        np_or_none(offset),
    )
    rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (1e-10, 1e-12)
    assert got.item() == pytest.approx(want, rel=rtol, abs=atol)
    np.testing.assert_allclose(grad.double().numpy(), want_grad, rtol=rtol, atol=atol)

    za = z.clone().requires_grad_(True)
    ref = _autograd_loss(za, log_q.to(dtype), tau, w, kl_weight, labels, ce_weight, offset)
    (ref_grad,) = torch.autograd.grad(ref, za)
    assert got.item() == pytest.approx(ref.item(), rel=rtol, abs=atol)
    torch.testing.assert_close(grad, ref_grad, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"weights": True},
        {"labels": True, "ce_weight": 0.4, "kl_weight": 0.6},
        {"labels": True, "offset": True, "weights": True, "kl_weight": 2.0},
    ],
)
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("tau", [1.0, 2.5])
def test_gradcheck_float64(kw: dict, from_logits: bool, tau: float) -> None:
    z, t, w, y, off = _case(3, 5, 4, torch.float64)
    args = {
        "weights": w if kw.get("weights") else None,
        "labels": y if kw.get("labels") else None,
        "ce_offset": off if kw.get("offset") else None,
        "kl_weight": kw.get("kl_weight", 1.0),
        "ce_weight": kw.get("ce_weight", 1.0),
    }
    if from_logits:

        def fn(x):
            return tempered_kl_logits(t, x, tau, target_tau=tau * 1.5, **args)
    else:
        log_q = F.log_softmax(t / tau, dim=-1)

        def fn(x):
            return tempered_kl(log_q, x, tau, **args)

    assert torch.autograd.gradcheck(fn, (z.requires_grad_(True),))


# ---------------------------------------------------------------- target, grad modes


def test_target_and_weights_get_no_gradient() -> None:
    """The target is a constant: a target that requires grad is treated as detached (as
    DKD and ECL detach it), the student's gradient is unchanged."""
    z, t, w, _, _ = _case(1, 4, 5, torch.float32)
    zg, tg, wg = (x.clone().requires_grad_(True) for x in (z, t, w))
    tempered_kl_logits(tg, zg, 2.0, weights=wg).backward()
    assert tg.grad is None and wg.grad is None
    z2 = z.clone().requires_grad_(True)
    tempered_kl_logits(t, z2, 2.0, weights=w).backward()
    torch.testing.assert_close(zg.grad, z2.grad, rtol=0, atol=0)
    # the same through a public loss: the teacher gets nothing, the student its gradient
    zk, tk = z.clone().requires_grad_(True), t.clone().requires_grad_(True)
    kd(student_logits=zk, teacher_logits=tk, labels=torch.tensor([0, 1, 2, 3])).backward()
    assert tk.grad is None and zk.grad is not None


def test_no_grad_and_constant_student_give_the_value() -> None:
    z, t, _, _, _ = _case(2, 6, 3, torch.float32)
    zg = z.clone().requires_grad_(True)
    with_grad = tempered_kl_logits(t, zg, 3.0)
    with torch.no_grad():
        plain = tempered_kl_logits(t, zg, 3.0)
    const = tempered_kl_logits(t, z, 3.0)
    assert not plain.requires_grad and not const.requires_grad
    assert plain.item() == with_grad.item() == const.item()


def test_second_derivative_is_refused() -> None:
    z, t, _, _, _ = _case(2, 3, 4, torch.float64)
    z.requires_grad_(True)
    with pytest.raises(RuntimeError, match="not twice differentiable"):
        torch.autograd.grad(tempered_kl_logits(t, z, 2.0), z, create_graph=True)


# ---------------------------------------------------------------- edge cases


def test_temperature_one_is_the_untempered_kl() -> None:
    z, t, _, _, _ = _case(4, 5, 6, torch.float64)
    z.requires_grad_(True)
    got = tempered_kl_logits(t, z, 1.0)
    want = F.kl_div(
        F.log_softmax(z, -1), F.log_softmax(t, -1), reduction="batchmean", log_target=True
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    (g,) = torch.autograd.grad(got, z)
    torch.testing.assert_close(g, (z.softmax(-1) - t.softmax(-1)).detach() / 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_large_logits_stay_finite(dtype: torch.dtype, tau: float) -> None:
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    t = torch.tensor([[-1e4, 1e4, 0.0], [-1e4, -1e4, 1e4], [0.0, 1e4, -1e4]], dtype=dtype)
    zg = z.clone().requires_grad_(True)
    loss = tempered_kl_logits(t, zg, tau, labels=torch.tensor([0, 2, 1]), ce_weight=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zg.grad).all()
    want, want_grad = _np_loss_and_grad(
        z.double().numpy(),
        _np_log_softmax(t.double().numpy() / tau),
        tau,
        None,
        1.0,
        np.array([0, 2, 1]),
        0.5,
        None,
    )
    assert loss.item() == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(zg.grad.double().numpy(), want_grad, rtol=1e-5, atol=1e-6)


def test_zero_mass_classes_count_zero() -> None:
    """Rows whose target puts no mass on some classes (log q = -inf): 0 log 0 = 0."""
    z = torch.tensor([[0.3, -1.2, 2.0, 0.1], [1.0, 1.0, -1.0, 0.5]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    zg = z.clone().requires_grad_(True)
    loss = tempered_kl(torch.log(q), zg, 2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zg.grad).all()
    want, want_grad = _np_loss_and_grad(
        z.numpy(), torch.log(q).numpy(), 2.0, None, 1.0, None, 1.0, None
    )
    assert loss.item() == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(zg.grad.numpy(), want_grad, rtol=1e-12, atol=1e-14)
    # the same target from logits with -inf entries
    t = torch.log(q)
    assert tempered_kl_logits(t, z, 2.0, target_tau=1.0).item() == pytest.approx(want, rel=1e-12)


def test_nan_target_stays_nan() -> None:
    """A NaN teacher is not hidden by the 0 log 0 rule (the step's finite check sees it)."""
    z = torch.zeros(2, 3)
    t = torch.tensor([[float("nan"), 0.0, 0.0], [0.0, 1.0, 2.0]])
    assert torch.isnan(tempered_kl_logits(t, z, 2.0))


def test_autocast_bfloat16_computes_in_float32() -> None:
    z, t, _, y, _ = _case(5, 8, 10, torch.float32)
    zb = z.to(torch.bfloat16).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = tempered_kl_logits(t.to(torch.bfloat16), zb, 2.0, labels=y, ce_weight=0.5)
    assert loss.dtype == torch.float32
    loss.backward()
    assert zb.grad.dtype == torch.bfloat16
    z32 = zb.detach().float().requires_grad_(True)
    ref = tempered_kl_logits(t.to(torch.bfloat16).float(), z32, 2.0, labels=y, ce_weight=0.5)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    torch.testing.assert_close(zb.grad.float(), z32.grad, rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------- the losses that use it


def _old_kl(log_q, z, tau):
    """The former ``tempered_kl``: ``tau^2 * F.kl_div(batchmean, log_target=True)``."""
    log_p = F.log_softmax(z.float() / tau, dim=-1)
    return tau * tau * F.kl_div(log_p, log_q.float(), reduction="batchmean", log_target=True)


def _old_losses(z, zt, y, counts):
    """Each method's loss as it was composed before the fused op (autograd throughout)."""
    tau = 3.0
    w = effective_number_weights(counts, 0.9999)
    prior = log_prior(counts, z)
    return {
        "kd": lambda s: (
            0.2 * F.cross_entropy(s, y) + 0.8 * _old_kl(F.log_softmax(zt / tau, -1), s, tau)
        ),
        "dive": lambda s: (
            0.5 * F.cross_entropy(s + prior, y)
            + 0.5 * _old_kl(dive_target_log(zt, tau, 0.5), s, tau)
        ),
        "bkd": lambda s: F.cross_entropy(s, y) + 1.5 * _old_kl(bkd_target_log(zt, tau, w), s, tau),
        "ssd": lambda s: 0.0 * s.sum() + 0.7 * _old_kl(F.log_softmax(zt / tau, -1), s, tau),
    }


def _new_losses(z, zt, y, counts):
    tau = 3.0
    return {
        "kd": lambda s: kd(student_logits=s, teacher_logits=zt, labels=y, tau=tau, alpha=0.8),
        "dive": lambda s: dive(
            student_logits=s, teacher_logits=zt, labels=y, class_counts=counts, tau=tau
        ),
        "bkd": lambda s: bkd(
            student_logits=s, teacher_logits=zt, labels=y, class_counts=counts, tau=tau, alpha=1.5
        ),
        "ssd": lambda s: ssd(
            hard_logits=s.detach(),
            student_logits=s,
            teacher_logits=zt,
            labels=y,
            tau=tau,
            lambda_hard=0.0,
            lambda_soft=0.7,
        ),
    }


@pytest.mark.parametrize("name", ["kd", "dive", "bkd", "ssd"])
def test_losses_equal_their_former_composition(name: str) -> None:
    g = torch.Generator().manual_seed(7)
    z, zt = torch.randn(16, 10, generator=g) * 3, torch.randn(16, 10, generator=g) * 4
    y = torch.randint(0, 10, (16,), generator=g)
    counts = torch.tensor([500, 300, 200, 100, 60, 40, 20, 10, 5, 2])
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    old = _old_losses(z, zt, y, counts)[name](za)
    new = _new_losses(z, zt, y, counts)[name](zb)
    old.backward()
    new.backward()
    assert new.dtype == torch.float32
    assert new.item() == pytest.approx(old.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(zb.grad, za.grad, rtol=1e-4, atol=1e-6)


def test_ecl_and_dkd_gradients_equal_their_former_composition() -> None:
    g = torch.Generator().manual_seed(8)
    zs, zt = torch.randn(6, 5, generator=g) * 2, torch.randn(6, 5, generator=g) * 3
    y = torch.randint(0, 5, (6,), generator=g)
    tau = 2.0

    def old_dkd(s):  # the former dkd_parts: probabilities split by masks, -inf target
        def split(x):
            x = x / tau
            m = F.one_hot(y, 5).bool()
            lp = F.log_softmax(x, -1)
            bi = torch.cat(
                [lp.gather(1, y[:, None]), torch.logsumexp(lp.masked_fill(m, -1e30), -1, True)], 1
            )
            return bi, F.log_softmax(x.masked_fill(m, float("-inf")), -1)

        def rows(lq, lp):
            q = lq.exp()
            return (q * torch.where(q > 0, lq - lp, torch.zeros_like(lq))).sum(-1)

        (bs, ns), (bt, nt) = split(s), split(zt)
        return rows(bt, bs).mean() * tau**2 + 8 * rows(nt, ns).mean() * tau**2

    za, zb = zs.clone().requires_grad_(True), zs.clone().requires_grad_(True)
    old_dkd(za).backward()
    tckd, nckd = dkd_parts(zb, zt, y, tau)
    (tckd + 8 * nckd).backward()
    torch.testing.assert_close(zb.grad, za.grad, rtol=1e-4, atol=1e-6)

    # ECL: 2 experts; the former mean_i w_i T^2 KL (target detached)
    def old_wkl(t, s, w):
        lq, lp = F.log_softmax(t.detach() / tau, -1), F.log_softmax(s / tau, -1)
        kl = (lq.exp() * (lq - lp)).sum(-1) * tau * tau
        return (kl * w).mean() if w is not None else kl.mean()

    cls = [torch.randn(6, 5, generator=g).requires_grad_(True) for _ in range(2)]
    ref = [torch.randn(6, 5, generator=g) for _ in range(2)]
    feats = [torch.randn(6, 3, generator=g) for _ in range(2)]
    counts = torch.tensor([50, 30, 20, 10, 5])
    total = ecl(
        cls_logits=cls, ref_logits=ref, features=feats, labels=y, class_counts=counts, tau=tau
    )
    grads = torch.autograd.grad(total, cls)
    cls2 = [c.detach().clone().requires_grad_(True) for c in cls]
    from softlabels.losses import ecl_weights

    w = [ecl_weights(c, r, y) for c, r in zip(cls2, ref, strict=True)]
    prior = log_prior(counts, cls2[0])
    sup = torch.stack(
        [
            F.cross_entropy(r + prior, y) + F.cross_entropy(c + prior, y)
            for c, r in zip(cls2, ref, strict=True)
        ]
    ).mean()
    logit = old_wkl(cls2[0], cls2[1], w[1]) + old_wkl(cls2[1], cls2[0], w[0])
    feat = old_wkl(feats[0], feats[1], None) + old_wkl(feats[1], feats[0], None)
    old = sup + 0.6 * (logit + feat) / 2
    assert total.item() == pytest.approx(old.item(), rel=1e-5)
    for a, b in zip(grads, torch.autograd.grad(old, cls2), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_empty_batch_is_nan_like_a_mean() -> None:
    z = torch.empty(0, 3, requires_grad=True)
    assert torch.isnan(tempered_kl_logits(torch.empty(0, 3), z, 2.0))
    assert torch.isnan(F.kl_div(z, torch.empty(0, 3), reduction="batchmean", log_target=True))
