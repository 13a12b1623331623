"""The top-k encoding and the rebuild rules (stores/topk.py: label-profile v2, and the
equal-rest v1 a profile-less view falls back to) against independent numpy computations,
written here from METHODS §12 without the module's helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softlabels.errors import CacheError, UsageError
from softlabels.stores import topk as T


def _logits(n: int = 64, c: int = 20, seed: int = 0, dtype: str = "float32") -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * rng.uniform(0.5, 4.0, size=(n, 1))
    return z.astype(dtype)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _rebuilt(
    z: np.ndarray, k: int, tau: float, power: float = 1.0, prof: np.ndarray | None = None
) -> np.ndarray:
    """METHODS §12 by hand, row by row: the K largest keep their logits; without a profile
    (rule equal-rest) the other C - K get m = log(sum exp(rest)) - log(C - K); with one
    (rule label-profile, a row of ``prof`` per row) they get m + a (p_c - mean p), a =
    std(rest z) / std(rest p), m such that their log-sum-exp is that of z's. Softmax at T,
    then DiVE's power normalisation."""
    z = z.astype(np.float64)
    c = z.shape[-1]
    out = np.empty_like(z)
    for i, row in enumerate(z):
        order = sorted(range(c), key=lambda j: (-row[j], j))
        top, rest = order[:k], order[k:]
        lse = math.log(sum(math.exp(row[j]) for j in rest))
        if prof is None:
            r = np.zeros(c - k)
        else:
            p = np.array([prof[i][j] for j in rest], np.float64)
            std = float(np.std([row[j] for j in rest]))
            r = std / p.std() * (p - p.mean()) if p.std() > 1e-6 else np.zeros(c - k)
        logits = np.empty(c)
        logits[top] = row[top]
        logits[rest] = lse - math.log(np.exp(r).sum()) + r
        q = _softmax(logits / tau) ** power
        out[i] = q / q.sum()
    return out


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("k", [1, 3, 19])
def test_encode_keeps_the_k_largest_in_order(dtype: str, k: int) -> None:
    z = _logits(dtype=dtype)
    values, ids, rest = T.encode(z, k)
    order = np.argsort(-z.astype(np.float32), axis=-1, kind="stable")[:, :k]
    assert values.dtype == np.dtype(dtype) and ids.dtype == np.uint16 and rest.dtype == np.float32
    assert np.array_equal(ids, order)
    assert np.array_equal(values, np.take_along_axis(z, order, -1))
    assert (np.diff(values.astype(np.float32), axis=-1) <= 0).all()
    mask = np.ones_like(z, bool)
    np.put_along_axis(mask, order, False, -1)
    z64 = z.astype(np.float64)
    lse = np.log(np.where(mask, np.exp(z64), 0.0).sum(-1))
    np.testing.assert_allclose(rest[:, 0], lse, rtol=1e-6)


def test_ties_go_to_the_smaller_class_id() -> None:
    z = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0]], np.float16)
    values, ids, _ = T.encode(z, 2)
    assert ids.tolist() == [[1, 2]] and values.tolist() == [[3.0, 3.0]]
    _, ids4, _ = T.encode(z, 4)
    assert ids4.tolist() == [[1, 2, 4, 5]]


def test_index_dtype_is_uint16_up_to_65536_classes_else_int32() -> None:
    assert T.index_dtype(65_536) == "uint16" and T.index_dtype(65_537) == "int32"
    z = _logits(n=2, c=65_537)
    z[0, 65_536] = 100.0  # the largest id must survive the cast
    values, ids, _ = T.encode(z, 2)
    assert ids.dtype == np.int32 and ids[0, 0] == 65_536 and values[0, 0] == 100.0


@pytest.mark.parametrize("k", [1, 5, 19])
@pytest.mark.parametrize(("tau", "power"), [(1, 1), (2, 1), (4, 1), (8, 1), (3, 0.5), (0.5, 1)])
def test_rebuilt_distribution_matches_the_rule_by_hand(k: int, tau: float, power: float) -> None:
    z = _logits(n=16, dtype="float16")
    values, ids, rest = T.encode(z, k)
    got = np.exp(T.log_probs(values, ids, rest, z.shape[-1], tau=tau, power=power))
    np.testing.assert_allclose(got, _rebuilt(z, k, tau, power), rtol=2e-5, atol=1e-7)
    # the dense view's softmax at T is the rebuilt distribution at T (and at T/p with power p)
    dense = T.dense_view(values, ids, rest, z.shape[-1]).astype(np.float64)
    np.testing.assert_allclose(_softmax(dense * power / tau), got, rtol=2e-5, atol=1e-7)


def test_at_t1_the_top_k_probabilities_and_the_rest_mass_are_exact() -> None:
    z = _logits(n=32, c=100, seed=3)
    values, ids, rest = T.encode(z, 10)
    p = _softmax(z.astype(np.float64))
    q = np.exp(T.log_probs(values, ids, rest, 100).astype(np.float64))
    np.testing.assert_allclose(
        np.take_along_axis(q, ids, -1), np.take_along_axis(p, ids, -1), rtol=1e-5
    )
    rest_p = 1 - np.take_along_axis(p, ids, -1).sum(-1)
    rest_q = 1 - np.take_along_axis(q, ids, -1).sum(-1)
    np.testing.assert_allclose(rest_q, rest_p, rtol=1e-4, atol=1e-7)
    # at T > 1 the rest's mass is over-estimated (power-mean inequality)
    p4 = _softmax(z.astype(np.float64) / 4)
    q4 = np.exp(T.log_probs(values, ids, rest, 100, tau=4).astype(np.float64))
    over = (1 - np.take_along_axis(q4, ids, -1).sum(-1)) - (
        1 - np.take_along_axis(p4, ids, -1).sum(-1)
    )
    assert (over > -1e-6).all() and over.mean() > 0


def test_k_equal_c_minus_1_rebuilds_the_logits_exactly() -> None:
    z = _logits(n=8, c=12, dtype="float16")
    dense = T.dense_view(*T.encode(z, 11), 12)
    assert np.array_equal(dense, z.astype(np.float32))


def test_torch_gives_the_bytes_of_numpy() -> None:
    z = _logits(n=40, c=30, dtype="float16")
    values, ids, rest = T.encode(z, 4)
    host = T.dense_view(values, ids, rest, 30)
    dev = T.dense_view(
        torch.from_numpy(values), torch.from_numpy(ids.astype(np.int32)), torch.from_numpy(rest), 30
    )
    assert dev.dtype == torch.float32 and np.array_equal(dev.numpy(), host)
    lp = T.log_probs(torch.from_numpy(values), torch.from_numpy(ids.astype(np.int64)),
                     torch.from_numpy(rest), 30, tau=2.0)  # fmt: skip
    np.testing.assert_allclose(lp.numpy(), T.log_probs(values, ids, rest, 30, tau=2.0), atol=1e-6)


def _kl(p_log: np.ndarray, q_log: np.ndarray) -> np.ndarray:
    return (np.exp(p_log) * (p_log - q_log)).sum(-1)


def test_chunk_error_equals_a_recomputation() -> None:
    teacher = _logits(n=24, c=50, seed=5).reshape(12, 2, 50)  # [rows, V, C] float32
    rng = np.random.default_rng(1)
    table = rng.normal(size=(50, 50)).astype(np.float32)
    labels = rng.integers(0, 50, size=12)
    prof = T.pair_profiles(table, labels[:, None])  # [12, 1, 50]: one per row, every view
    enc = T.encode_chunk(teacher, np.float16, 5, prof)
    err = enc["topk/error"][0]
    assert err.dtype == np.float32 and err.shape == (len(T.ERROR_COLUMNS),)
    z = teacher.reshape(-1, 50).astype(np.float64)
    cast = teacher.astype(np.float16).reshape(-1, 50)
    want = {}
    for tau, power, tag in [
        (1, 1, "t1"),
        (2, 1, "t2"),
        (4, 1, "t4"),
        (8, 1, "t8"),
        (3, 0.5, "dive"),
    ]:
        p = _softmax(z / tau) ** power
        p /= p.sum(-1, keepdims=True)
        q = _rebuilt(cast, 5, tau, power, prof=np.repeat(table[labels], 2, axis=0))
        kl = _kl(np.log(p), np.log(q))
        want[f"kl_mean_{tag}"], want[f"kl_max_{tag}"] = kl.mean(), kl.max()
    want["top1_agreement"] = float(
        (z.argmax(-1) == np.argsort(-cast, -1, kind="stable")[:, 0]).mean()
    )
    got = dict(zip(T.ERROR_COLUMNS, err.tolist(), strict=True))
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-9), name
    assert all(got[f"kl_mean_{t}"] > 0 for t in ("t1", "t2", "t4", "t8", "dive"))


def test_error_summary_weights_means_by_rows_and_takes_the_max_of_maxima() -> None:
    cols = ("kl_mean_t1", "kl_max_t1", "top1_agreement")
    errors = np.array([[1.0, 5.0, 1.0], [4.0, 2.0, 0.5]], np.float32)
    got = T.error_summary(errors, [3, 1], cols)
    assert got == {"kl_mean_t1": 1.75, "kl_max_t1": 5.0, "top1_agreement": 0.875}


@pytest.mark.parametrize("k", [0, -1, 10, 11])
def test_k_must_be_between_1_and_c_minus_1(k: int) -> None:
    with pytest.raises(UsageError, match="--topk"):
        T.check_k(k, 10)


def test_an_unknown_rule_is_refused_in_one_line() -> None:
    T.check_rule(T.RULE, T.RULE_VERSION, "here")
    T.check_rule("equal-rest", 1, "here")  # caches of the earlier rule are still rebuilt
    with pytest.raises(CacheError, match=r"rule 'equal-rest' version 2.*upgrade softlabels"):
        T.check_rule("equal-rest", 2, "teacher 'a'")
