"""The benchmarks' synthetic sparse caches (written with the store layer, not by ``dump``) are
what readers of the current top-k rule expect: the rest profile stored, its error that of
the targets readers rebuild, and tune-tau reads them. Tiny shapes: nothing is timed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_topk
import bench_tune_tau

from softlabels import open_cache
from softlabels.stores import schema
from softlabels.stores import topk as T


def _kl_t1(z: np.ndarray, q: np.ndarray) -> np.ndarray:
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lp, lq = log_softmax(z.astype(np.float64)), log_softmax(q.astype(np.float64))
    return (np.exp(lp) * (lp - lq)).sum(-1)


def test_bench_topk_inat_caches_carry_the_profile_their_error_was_measured_under(
    tmp_path: Path,
) -> None:
    n, c, chunk = 96, 40, 32
    result = bench_topk.bench_inat(tmp_path, n=n, c=c, chunk=chunk)
    assert [r["k"] for r in result["rows"]] == [None, *bench_topk.KS]
    assert result["by_k"]["20"]["bytes_per_view"] == result["rows"][-1]["bytes_per_view"]
    # The logits bench_inat wrote, made again (its seeds) to check the recorded error.
    counts = np.maximum(1, (500 * (1 / 500) ** (np.arange(c) / (c - 1)))).astype(np.int64)
    prior = counts / counts.sum()
    labels = np.random.default_rng(0).choice(c, size=n, p=prior).astype(np.int32)
    rng = np.random.default_rng(1)
    logits = np.concatenate(
        [bench_topk._inat_logits(rng, labels[s : s + chunk], prior) for s in range(0, n, chunk)]
    )
    for k in bench_topk.KS:
        cache = open_cache(str(tmp_path / f"inat-k{k}.slc"))
        assert cache.verify() == []
        assert cache.metadata.format == schema.FORMAT_VERSION
        teacher = cache.teacher("t")
        assert teacher.info.topk.rule == T.RULE and teacher.info.topk.profile == "label"
        assert teacher.rest_profile().shape == (c, c)
        assert teacher.reader(schema.TOPK_REST).read_all().shape == (n, 1, len(T.REST_STATS))
        errors = teacher.reader(schema.TOPK_ERROR).read_all()
        for s, e, dense in teacher.dense_chunks():
            kl = _kl_t1(logits[s:e, 0], dense[:, 0])
            np.testing.assert_allclose(errors[s // chunk, 0], kl.mean(), rtol=1e-4)


def test_bench_tune_tau_sparse_cache_is_read_by_tune_tau(tmp_path: Path) -> None:
    from softlabels.analysis import virtual_examples

    url = str(tmp_path / "tt.slc")
    out = bench_tune_tau.build(url, n=600, c=30, chunk=128, compressor="zstd", topk=5)
    assert out["profile_fit_chunks"] == 5  # every chunk of a small cache
    cache = open_cache(url)
    assert cache.verify() == []
    teacher = cache.teacher("t")
    assert teacher.rest_profile().shape == (30, 30)
    assert np.abs(teacher.rest_profile()).max() > 0
    ve = virtual_examples(url, "t", taus=(1.0, 2.0), powers=(1.0,), device="cpu")
    assert ve.rebuilt == {"t": {"k": 5, "rule": T.RULE, "rule_version": T.RULE_VERSION}}
