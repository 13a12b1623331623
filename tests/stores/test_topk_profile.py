"""Rule label-profile v2 (stores/topk.py): the rest profile's fit, the pairs' profiles and
the dense view, against by-hand loops written from the module's docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softlabels.stores import topk as T


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _order(row: np.ndarray) -> list[int]:
    return sorted(range(len(row)), key=lambda j: (-row[j], j))


def _fit_by_hand(z, k, labels, partner=None, lam=None) -> np.ndarray:
    """b[y, c]: weighted mean of z_c - mean(rest z) over the pairs of label y with c in
    their rest (a mixed pair: lam for its label, 1 - lam for its partner's); where y has no
    such pair, the same mean over every label."""
    n, v, c = z.shape
    s, w = np.zeros((c, c)), np.zeros((c, c))
    for i in range(n):
        for j in range(v):
            row = z[i, j].astype(np.float64)
            rest = _order(row)[k:]
            mean = np.mean(row[rest])
            pairs = [(labels[i], 1.0 if lam is None else float(lam[i, j]))]
            if lam is not None and lam[i, j] < 1:
                pairs.append((partner[i, j], 1.0 - float(lam[i, j])))
            for y, weight in pairs:
                for cls in rest:
                    s[y, cls] += weight * (row[cls] - mean)
                    w[y, cls] += weight
    overall = np.divide(s.sum(0), w.sum(0), out=np.zeros(c), where=w.sum(0) > 0)
    return np.where(w > 0, np.divide(s, w, out=np.zeros_like(s), where=w > 0), overall)


def test_the_fit_is_the_mean_deviation_by_label_with_the_overall_fallback() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 2, 8)).astype(np.float32) * 2
    labels = rng.integers(0, 5, size=30)  # labels 5..7 have no rows: the overall profile
    got = T.fit_profile(z, 3, labels)
    want = _fit_by_hand(z, 3, labels)
    assert got.dtype == np.float32 and got.shape == (8, 8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.allclose(got[6], got[7])  # both fall back to the same overall row
    # fitting chunk by chunk gives the table of one fit over all
    fit = T.ProfileFit(8, 3)
    fit.add(z[:13], labels[:13])
    fit.add(z[13:], labels[13:])
    np.testing.assert_allclose(fit.table(), got, rtol=1e-6, atol=1e-7)


def test_a_mixed_view_counts_for_both_labels_by_lam() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 3, 6)).astype(np.float32)
    labels = rng.integers(0, 6, size=20)
    partner = rng.integers(0, 6, size=(20, 3))
    lam = np.where(rng.random((20, 3)) < 0.5, 1.0, rng.random((20, 3))).astype(np.float32)
    got = T.fit_profile(z, 2, labels, partner, lam)
    np.testing.assert_allclose(got, _fit_by_hand(z, 2, labels, partner, lam), rtol=1e-5, atol=1e-6)
    # ignoring the partners gives another table
    assert not np.allclose(got, T.fit_profile(z, 2, labels), atol=1e-3)


def test_class_mode_has_one_row_for_every_label() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(10, 1, 7)).astype(np.float32)
    labels = rng.integers(0, 7, size=10)
    fit = T.ProfileFit(7, 2, mode="class")
    fit.add(z, labels)
    table = fit.table()
    assert table.shape == (1, 7)
    np.testing.assert_allclose(table[0], _fit_by_hand(z, 2, np.zeros(10, int))[0], rtol=1e-5)
    assert T.profile_mode(4096) == "label" and T.profile_mode(4097) == "class"
    # one row: every pair gets it, whatever its label
    assert np.array_equal(T.pair_profiles(table, np.array([[3], [5]])), table[0])


def test_pair_profiles_mix_two_labels_by_lam() -> None:
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    labels = np.array([[0], [2]])
    partner = np.array([[1, 2], [0, 0]])
    lam = np.array([[1.0, 0.25], [0.5, 1.0]], np.float32)
    got = T.pair_profiles(table, labels, partner, lam)
    assert got.shape == (2, 2, 4)
    np.testing.assert_allclose(got[0, 0], table[0])
    np.testing.assert_allclose(got[0, 1], 0.25 * table[0] + 0.75 * table[2])
    np.testing.assert_allclose(got[1, 0], 0.5 * table[2] + 0.5 * table[0])
    np.testing.assert_allclose(got[1, 1], table[2])


def _rebuilt_by_hand(z: np.ndarray, k: int, prof: np.ndarray) -> np.ndarray:
    """The dense view row by row: top K kept; rest m + a (p_c - mean p), a = std(rest z) /
    std(rest p), log-sum-exp of the rest that of z's."""
    out = np.empty(z.shape, np.float64)
    for i, row in enumerate(z.astype(np.float64)):
        order = _order(row)
        top, rest = order[:k], order[k:]
        p = prof[i][rest].astype(np.float64)
        a = np.std(row[rest]) / p.std() if p.std() > 1e-6 else 0.0
        r = a * (p - p.mean())
        lse = math.log(np.exp(row[rest]).sum())
        out[i, top] = row[top]
        out[i, rest] = lse - math.log(np.exp(r).sum()) + r
    return out


@pytest.mark.parametrize("k", [1, 4, 11])
def test_the_dense_view_is_the_rule_by_hand_and_exact_in_mass_at_t1(k: int) -> None:
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(25, 12)) * rng.uniform(0.5, 3, size=(25, 1))).astype(np.float16)
    prof = rng.normal(size=(25, 12)).astype(np.float32)
    values, ids, rest = T.encode(z, k)
    dense = T.dense_view(values, ids, rest, 12, prof)
    np.testing.assert_allclose(dense, _rebuilt_by_hand(z, k, prof), rtol=1e-5, atol=1e-5)
    p, q = _softmax(z.astype(np.float64)), _softmax(dense.astype(np.float64))
    np.testing.assert_allclose(
        np.take_along_axis(q, ids.astype(np.int64), -1),
        np.take_along_axis(p, ids.astype(np.int64), -1),
        rtol=1e-4,
    )
    # the rebuilt rest has the stored spread (C - K >= 2)
    if k <= 10:
        mask = np.ones_like(z, bool)
        np.put_along_axis(mask, ids.astype(np.int64), False, -1)
        spread = np.array([dense[i][mask[i]].std() for i in range(len(z))])
        np.testing.assert_allclose(spread, rest[:, 1], rtol=1e-4)


def test_a_rest_that_follows_its_label_profile_is_rebuilt_exactly() -> None:
    # Every row's rest logits are an offset plus a scaled copy of its label's profile: the
    # fitted profile recovers the shape, the stored std the scale, lse the offset.
    rng = np.random.default_rng(4)
    c, k, n = 10, 3, 200
    shape = rng.normal(size=(c, c))
    labels = rng.integers(0, c, size=n)
    scale = rng.uniform(0.5, 2.0, size=n)
    z = rng.normal(size=(n, 1))[:, :, None] + scale[:, None, None] * shape[labels][:, None, :]
    top = (np.arange(c)[None] == labels[:, None])[:, None, :]  # the label's logit on top ...
    z = np.where(top, 20.0, z)
    z[:, :, :] = np.where(
        np.isin(np.arange(c), [0, 1])[None, None] & ~top, 19.0, z
    )  # ... and two fixed classes, so every row's rest is the same set of classes
    z = z.astype(np.float32)
    rows_with_same_rest = labels >= 2
    z, labels = z[rows_with_same_rest], labels[rows_with_same_rest]
    table = T.fit_profile(z, k, labels)
    values, ids, rest = T.encode(z, k)
    dense = T.dense_view(values, ids, rest, c, T.pair_profiles(table, labels[:, None]))
    np.testing.assert_allclose(dense, z, atol=2e-4)
    # the equal-rest rule loses the shape
    assert np.abs(T.dense_view(values, ids, rest, c) - z).max() > 0.5


def test_a_flat_profile_is_the_equal_rest_rule() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(9, 20)).astype(np.float32)
    values, ids, rest = T.encode(z, 5)
    flat = np.full((9, 20), 0.7, np.float32)
    np.testing.assert_allclose(
        T.dense_view(values, ids, rest, 20, flat), T.dense_view(values, ids, rest, 20), atol=1e-5
    )


def test_torch_and_numpy_agree_and_batches_broadcast_one_profile_per_row() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=(16, 3, 30)).astype(np.float16)
    table = rng.normal(size=(30, 30)).astype(np.float32)
    labels = rng.integers(0, 30, size=16)
    values, ids, rest = T.encode(z, 6)
    host = T.dense_view(values, ids, rest, 30, T.pair_profiles(table, labels[:, None]))
    per_pair = np.broadcast_to(table[labels][:, None], (16, 3, 30))
    np.testing.assert_allclose(host, T.dense_view(values, ids, rest, 30, per_pair), atol=1e-6)
    dev = T.dense_view(
        torch.from_numpy(values),
        torch.from_numpy(ids.astype(np.int32)),
        torch.from_numpy(rest),
        30,
        T.pair_profiles(torch.from_numpy(table), torch.from_numpy(labels)[:, None]),
    )
    assert dev.dtype == torch.float32 and dev.shape == (16, 3, 30)
    np.testing.assert_allclose(dev.numpy(), host, atol=1e-5)


def test_the_record_names_the_rule_its_profile_and_two_rest_statistics() -> None:
    info = T.topk_info(10, 100)
    assert (info.rule, info.rule_version, info.profile) == ("label-profile", 2, "label")
    assert info.rest == ("lse", "std")
    assert T.topk_info(20, 8142).profile == "class"


def test_encode_chunks_fits_on_every_row_and_returns_the_profile() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=(23, 2, 15)).astype(np.float32)
    labels = rng.integers(0, 15, size=23)
    rows, per_chunk, static = T.encode_chunks(z, np.float16, 4, 10, labels)
    table = static["topk/profile"]
    np.testing.assert_allclose(table, T.fit_profile(z.astype(np.float16), 4, labels), atol=1e-6)
    assert rows["topk/values"].shape == (23, 2, 4) and per_chunk["topk/error"].shape[0] == 3
    want = T.encode_chunk(z[10:20], np.float16, 4, T.pair_profiles(table, labels[10:20, None]))
    np.testing.assert_array_equal(per_chunk["topk/error"][1], want["topk/error"][0])
