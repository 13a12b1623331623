"""``dump --topk K``: sparse teachers next to their dense twins (same teacher, same rows),
the error recorded at dump time, the format version, bad input, damage and resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from softlabels_teachers_helpers import (
    BATCH,
    CHUNK,
    DATASET,
    cache_files,
    dump_to,
    flip_a_byte,
    one_error_line,
)

import softlabels
from softlabels.errors import CacheError, UsageError
from softlabels.stores import schema
from softlabels.stores import topk as T

K = 3
C = 10  # mnist1d


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float16 K=3 dump of ``a=cnn1d`` with two augmented views (never modified: copy it)."""
    out = tmp_path_factory.mktemp("sparse") / "k3.slc"
    dump_to(out, views=2, topk=K)
    return out


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Its dense twins: float16 (what a dense cache stores) and float32 (the teacher's output)."""
    root = tmp_path_factory.mktemp("dense")
    out = {}
    for dtype in ("float16", "float32"):
        out[dtype] = root / f"{dtype}.slc"
        dump_to(out[dtype], views=2, dtype=dtype)
    return out


def _arrays(path: Path) -> dict[str, np.ndarray]:
    t = softlabels.open_cache(str(path)).teacher("a")
    names = (schema.TOPK_VALUES, schema.TOPK_INDICES, schema.TOPK_REST, schema.TOPK_ERROR)
    return {w: t.reader(w).read_all() for w in names}


def _dense(path: Path) -> np.ndarray:
    return softlabels.open_cache(str(path)).teacher("a").reader(schema.LOGITS).read_all()


def test_sparse_teacher_holds_the_top_k_of_its_dense_twin(sparse: Path, dense) -> None:
    got = _arrays(sparse)
    z = _dense(dense["float16"])  # [N, V, C] float16
    order = np.argsort(-z.astype(np.float32), axis=-1, kind="stable")[..., :K]
    assert got[schema.TOPK_INDICES].dtype == np.uint16
    assert np.array_equal(got[schema.TOPK_INDICES], order)
    assert got[schema.TOPK_VALUES].dtype == np.float16
    assert np.array_equal(got[schema.TOPK_VALUES], np.take_along_axis(z, order, -1))
    mask = np.ones(z.shape, bool)
    np.put_along_axis(mask, order, False, -1)
    lse = np.log(np.where(mask, np.exp(z.astype(np.float64)), 0).sum(-1))
    assert got[schema.TOPK_REST].dtype == np.float32
    np.testing.assert_allclose(got[schema.TOPK_REST][..., 0], lse, rtol=1e-6)
    # T = 1: the rebuilt probabilities of the K kept classes are the dense cache's
    cache = softlabels.open_cache(str(sparse))
    rebuilt = cache.teacher("a").dense_logits(np.arange(cache.num_samples)).astype(np.float64)
    p = np.exp(z - np.log(np.exp(z.astype(np.float64)).sum(-1, keepdims=True)))
    q = np.exp(rebuilt - np.log(np.exp(rebuilt).sum(-1, keepdims=True)))
    np.testing.assert_allclose(
        np.take_along_axis(q, order, -1), np.take_along_axis(p, order, -1), rtol=1e-5
    )


def test_format_and_metadata(sparse: Path, dense) -> None:
    cache = softlabels.open_cache(str(sparse))
    t = cache.teacher("a")
    assert cache.metadata.format == 3 and schema.FORMAT_VERSION == 3
    assert (t.storage, t.k) == ("topk", K)
    info = t.info.topk
    assert info is not None
    assert (info.rule, info.rule_version, info.k, info.index_dtype, info.profile) == (
        "label-profile",
        2,
        K,
        "uint16",
        "label",
    )
    assert info.rest == ("lse", "std") and info.error_columns == T.ERROR_COLUMNS
    assert t.rest_profile().shape == (C, C)
    assert cache.metadata.config["topk"] == K
    assert not (sparse / "teachers" / "a" / "logits").exists()
    assert (sparse / "teachers" / "a" / "features").exists()  # features stay dense
    twin = softlabels.open_cache(str(dense["float16"]))
    assert twin.metadata.format == 1 and "topk" not in twin.metadata.config
    assert twin.teacher("a").storage == "dense" and twin.teacher("a").k is None


def _profile_by_hand(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """b[y, c]: mean over the pairs of label y with c outside their top K of z_c - mean of
    their rest; where label y has no such pair, the mean over every label's pairs."""
    s, w = np.zeros((C, C)), np.zeros((C, C))
    for row, y in zip(z.astype(np.float64), labels, strict=True):
        for pair in row:
            rest = np.argsort(-pair, kind="stable")[K:]
            s[y, rest] += pair[rest] - pair[rest].mean()
            w[y, rest] += 1
    overall = s.sum(0) / w.sum(0)
    return np.where(w > 0, s / np.maximum(w, 1), overall)


def test_the_stored_profile_is_fitted_on_every_row_of_the_dense_twin(sparse: Path, dense) -> None:
    cache = softlabels.open_cache(str(sparse))
    z = _dense(dense["float16"])  # the values the sparse cache keeps
    want = _profile_by_hand(z, cache.labels)
    np.testing.assert_allclose(cache.teacher("a").rest_profile(), want, rtol=1e-5, atol=1e-6)


def _recomputed_error(teacher32: np.ndarray, values, ids, rest, prof) -> list[float]:
    """The error columns by hand: KL(softmax_T(teacher) || softmax_T(rebuilt)), DiVE's power
    normalisation, top-1 agreement; mean and max over (row, view) pairs. The rebuilt rest:
    m + a (p - mean p) on the rest, a = std / std(p), log-sum-exp lse (rule v2)."""
    z = teacher32.reshape(-1, C).astype(np.float64)
    v = values.reshape(-1, K).astype(np.float64)
    i = ids.reshape(-1, K).astype(np.int64)
    st = rest.reshape(-1, 2).astype(np.float64)
    p = prof.reshape(-1, C).astype(np.float64)
    d = np.empty_like(z)
    for r in range(len(z)):
        rest_ids = np.setdiff1d(np.arange(C), i[r])
        q = p[r, rest_ids] - p[r, rest_ids].mean()
        x = st[r, 1] / q.std() * q
        d[r, rest_ids] = st[r, 0] - np.log(np.exp(x).sum()) + x
        d[r, i[r]] = v[r]

    def logp(x: np.ndarray, tau: float, power: float) -> np.ndarray:
        e = np.exp(x / tau - (x / tau).max(1, keepdims=True))
        p = (e / e.sum(1, keepdims=True)) ** power
        return np.log(p / p.sum(1, keepdims=True))

    out: list[float] = []
    for tau, power in ((1, 1), (2, 1), (4, 1), (8, 1), (3, 0.5)):
        lp, lq = logp(z, tau, power), logp(d, tau, power)
        kl = (np.exp(lp) * (lp - lq)).sum(1)
        out += [kl.mean(), kl.max()]
    out.append(float((z.argmax(1) == i[:, 0]).mean()))
    return out


def test_recorded_error_equals_a_recomputation(sparse: Path, dense) -> None:
    got = _arrays(sparse)
    z32 = _dense(dense["float32"])  # the teacher's float32 output, row for row
    errors = got[schema.TOPK_ERROR]
    assert errors.shape == (5, len(T.ERROR_COLUMNS)) and errors.dtype == np.float32
    cache = softlabels.open_cache(str(sparse))
    table, labels = cache.teacher("a").rest_profile(), cache.labels
    for chunk in range(5):
        rows = slice(chunk * CHUNK, (chunk + 1) * CHUNK)
        prof = np.repeat(table[labels[rows]], 2, axis=0)  # each row's label, both views
        want = _recomputed_error(
            z32[rows], got[schema.TOPK_VALUES][rows], got[schema.TOPK_INDICES][rows],
            got[schema.TOPK_REST][rows], prof,
        )  # fmt: skip
        np.testing.assert_allclose(errors[chunk], want, rtol=1e-4, atol=1e-9)
    # the summary: means weighted by the chunks' rows (32, 32, 32, 32, 31), max of maxima
    summary = softlabels.open_cache(str(sparse)).teacher("a").topk_error()["summary"]
    w = np.array([32, 32, 32, 32, 31], np.float64)
    assert summary["kl_mean_t4"] == pytest.approx((errors[:, 4] * w).sum() / w.sum())
    assert summary["kl_max_t4"] == pytest.approx(errors[:, 5].max())


def test_inspect_shows_the_error(sparse: Path, cli) -> None:
    result = cli("inspect", sparse, "--json")
    assert result.exit_code == 0, result.stderr
    (t,) = json.loads(result.stdout)["teachers"]
    assert (t["storage"], t["k"], t["logits_shape"]) == ("topk", K, [159, 2, C])
    assert t["topk"]["rule"] == "label-profile" and len(t["topk_error"]["chunks"]) == 5
    assert set(t["topk_error"]["summary"]) == set(T.ERROR_COLUMNS)
    text = cli("inspect", sparse)
    assert text.exit_code == 0
    assert f"top-{K} of" in text.stdout and "DiVE T = 3, p = 0.5" in text.stdout
    assert "top-1 agreement" in text.stdout


def _dump_args(out: Path, *extra: object) -> list[object]:
    return [
        "dump", "--dataset", DATASET, "--teacher", "a=cnn1d", "--out", out,
        "--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--topk", "0"), "Expected --topk K >= 1, got 0"),
        (("--topk", "-2"), "Expected --topk K >= 1, got -2"),
        (("--topk", "10"), "Expected --topk K < C = 10 classes"),
        (("--topk", "11"), "Expected --topk K < C = 10 classes"),
        (("--topk", "3", "--dtype", "bfloat16"), "top-k values are stored in the cache's dtype"),
    ],
)
def test_bad_topk_is_one_line(tmp_path: Path, cli, extra: tuple[str, ...], says: str) -> None:
    out = tmp_path / "bad.slc"
    line = one_error_line(cli(*_dump_args(out, *extra)))
    assert says in line
    assert not (out / "zarr.json").exists()


def test_dense_only_reads_of_a_sparse_teacher_are_refused(sparse: Path) -> None:
    t = softlabels.open_cache(str(sparse)).teacher("a")
    for read in (lambda: t.logits, lambda: t.reader(schema.LOGITS)):
        with pytest.raises(UsageError, match=r"stored top-3 \(sparse\).*dense_logits"):
            read()


def _set_root(path: Path, change) -> None:
    doc = json.loads((path / "zarr.json").read_text())
    change(doc["attributes"]["softlabels"])
    (path / "zarr.json").write_text(json.dumps(doc))


def test_formats_this_version_cannot_read_are_refused_in_one_line(
    sparse: Path, tmp_path: Path, cli
) -> None:
    def copy_of(src: Path) -> Path:
        dst = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(src, dst)
        return dst

    newer = copy_of(sparse)
    _set_root(newer, lambda a: a.update(format=4))
    line = one_error_line(cli("inspect", newer))
    assert "has cache format 4; this softlabels reads formats 1, 2 and 3" in line
    # a cache that claims format 1 or 2 (what an older softlabels reads) never holds a
    # teacher with a rest profile
    for claimed in (1, 2):
        older = copy_of(sparse)
        _set_root(older, lambda a, f=claimed: a.update(format=f))
        line = one_error_line(cli("inspect", older))
        assert f"Expected 3 (sparse teacher 'a') at softlabels.format, got {claimed}" in line
    # top-k outputs under a rule this version does not know: refused before any target is read
    rule = copy_of(sparse)
    _set_root(rule, lambda a: a["teachers"]["a"]["topk"].update(rule_version=3))
    t = softlabels.open_cache(str(rule)).teacher("a")
    with pytest.raises(
        CacheError, match=r"version 3; this softlabels rebuilds 'label-profile' version 2"
    ):
        t.dense_logits([0])


@pytest.mark.parametrize("array", ["values", "indices", "rest", "error"])
def test_verify_names_a_damaged_topk_chunk(sparse: Path, copy_of, cli, array: str) -> None:
    out = copy_of(sparse)
    key = out / "teachers" / "a" / "topk" / array / "c" / "2" / "0" / "0"
    if array == "error":
        key = out / "teachers" / "a" / "topk" / "error" / "c" / "2" / "0"
    flip_a_byte(key)
    result = cli("verify", out, "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["where"], p["chunk"]) for p in problems] == [
        ("checksum", f"teachers/a/topk/{array}", 2)
    ]


def test_resumed_sparse_dump_has_the_bytes_of_an_uninterrupted_one(
    sparse: Path, copy_of, cli
) -> None:
    out = copy_of(sparse)
    for chunk in (1, 4):  # as a crash leaves them: records gone, chunk files half written
        (out / "manifest" / f"chunk-{chunk:06d}.json").unlink()
        values = out / "teachers" / "a" / "topk" / "values" / "c" / str(chunk) / "0" / "0"
        values.write_bytes(values.read_bytes()[:5])
        (out / "teachers" / "a" / "topk" / "error" / "c" / str(chunk) / "0").unlink()
    result = cli(*_dump_args(out, "--views", 2, "--topk", K), "--json")
    assert result.exit_code == 0, result.stderr
    assert (json.loads(result.stdout)["status"], json.loads(result.stdout)["chunks_written"]) == (
        "resumed",
        2,
    )
    assert cache_files(out) == cache_files(sparse)


def test_dense_caches_are_unchanged_by_sparse_support(dense) -> None:
    """A dense dump writes format 1 and the config key it always had (so it resumes caches
    made before sparse teachers existed): no topk key anywhere in what it hashes."""
    cache = softlabels.open_cache(str(dense["float16"]))
    meta = cache.metadata
    assert meta.format == 1 and "topk" not in meta.config
    assert (dense["float16"] / "teachers" / "a" / "logits").exists()
    assert not (dense["float16"] / "teachers" / "a" / "topk").exists()


def test_verify_teacher_compares_the_stored_values(sparse: Path, cli) -> None:
    """``verify --teacher`` re-runs the model and compares the K stored values at their ids
    (the rest was never stored); another model is named view by view."""
    ok = cli("verify", sparse, "--dataset", DATASET, "--teacher", "a=cnn1d", "--json")
    assert ok.exit_code == 0, ok.stdout
    check = json.loads(ok.stdout)["teacher_check"]
    assert check["storage"] == "topk" and check["ok"] and check["sampled"] == 256
    other = cli("verify", sparse, "--dataset", DATASET, "--teacher", "a=mlp", "--json")
    assert other.exit_code == 1 and json.loads(other.stdout)["teacher_check"]["bad"]


def test_a_dump_stopped_before_its_profile_was_stored_starts_over(
    sparse: Path, copy_of, cli
) -> None:
    """No chunk is committed before the rest profile (the static record) is: a dump killed
    while fitting it left no chunk, and the rerun fits the same profile."""
    out = copy_of(sparse)
    for rec in (out / "manifest").iterdir():
        if rec.name.startswith(("chunk-", "static")):
            rec.unlink()
    shutil.rmtree(out / "teachers" / "a" / "topk" / "profile" / "c")
    result = cli(*_dump_args(out, "--views", 2, "--topk", K), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "created"
    assert cache_files(out) == cache_files(sparse)


def test_fit_chunks_are_spread_over_the_split_within_the_budget() -> None:
    from softlabels.teachers.dump import _fit_chunks

    assert _fit_chunks(10, 100, budget=10**9) == list(range(10))
    assert _fit_chunks(10, 100, budget=250) == [0, 9]
    assert _fit_chunks(10, 100, budget=500) == [0, 2, 4, 7, 9]
    assert _fit_chunks(10, 100, budget=50) == [0]  # at least one chunk


def test_a_profile_fitted_on_some_chunks_and_a_resume_that_reads_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dense
) -> None:
    """With a budget of two chunks' outputs the profile comes from the first and last chunk
    only; a dump resumed after that reads the stored profile (the bytes of an uninterrupted
    dump), it does not fit another on the chunks left."""
    import sys

    dump_module = sys.modules["softlabels.teachers.dump"]

    per_chunk = CHUNK * 2 * C * 4 + CHUNK * 2 * 128 * 2  # logits float32 + float16 features
    monkeypatch.setattr(dump_module, "PROFILE_FIT_BYTES", 2 * per_chunk)
    whole = tmp_path / "whole.slc"
    dump_to(whole, views=2, topk=K)
    cache = softlabels.open_cache(str(whole))
    z = _dense(dense["float16"])
    rows = np.r_[0:CHUNK, 4 * CHUNK : cache.num_samples]  # chunks 0 and 4 of 5
    want = _profile_by_hand(z[rows], cache.labels[rows])
    np.testing.assert_allclose(cache.teacher("a").rest_profile(), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, _profile_by_hand(z, cache.labels), atol=1e-4)
    # a crash after the profile and chunks 0, 4 and 2 were committed
    part = tmp_path / "part.slc"
    shutil.copytree(whole, part)
    for chunk in (1, 3):
        (part / "manifest" / f"chunk-{chunk:06d}.json").unlink()
    result = dump_to(part, views=2, topk=K)
    assert (result.status, result.chunks_written) == ("resumed", 2)
    assert cache_files(part) == cache_files(whole)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dumps with mixed views (two views, Mixup and CutMix): the K=3 float16 one and its
    dense twins, float16 (the values it keeps) and float32 (the teacher's output)."""
    root = tmp_path_factory.mktemp("mixed")
    mix = {"mixup": 0.4, "cutmix": 1.0, "mix_prob": 0.7}
    out = {"sparse": root / "sparse.slc"}
    dump_to(out["sparse"], views=2, topk=K, **mix)
    for dtype in ("float16", "float32"):
        out[dtype] = root / f"{dtype}.slc"
        dump_to(out[dtype], views=2, dtype=dtype, **mix)
    return out


def test_mixed_views_fit_the_profile_with_their_partners_labels(mixed: dict[str, Path]) -> None:
    """A mixed view counts for its row's label by lam and its partner's by 1 - lam, and its
    targets are rebuilt from that mix of the two label profiles, in every reader."""
    import torch

    from softlabels.students.targets import load_targets

    sparse_out, dense_out = mixed["sparse"], mixed["float16"]
    cache = softlabels.open_cache(str(sparse_out))
    partner, lam, _box = cache.read_mix()
    assert (partner >= 0).any() and (lam < 1).any()
    z = _dense(dense_out).astype(np.float64)
    s, w = np.zeros((C, C)), np.zeros((C, C))
    labels = cache.labels
    for i in range(len(z)):
        for v in range(2):
            rest = np.argsort(-z[i, v], kind="stable")[K:]
            dev = z[i, v, rest] - z[i, v, rest].mean()
            weights = [(labels[i], float(lam[i, v]))]
            if partner[i, v] >= 0:
                weights.append((labels[partner[i, v]], 1.0 - float(lam[i, v])))
            for y, wt in weights:
                s[y, rest] += wt * dev
                w[y, rest] += wt
    overall = s.sum(0) / w.sum(0)
    want = np.where(w > 0, s / np.maximum(w, 1e-300), overall)
    table = cache.teacher("a").rest_profile()
    np.testing.assert_allclose(table, want, rtol=1e-4, atol=1e-5)
    # a mixed pair's targets use lam * b[y_i] + (1 - lam) * b[y_j]: the reader and the
    # training targets agree, and both differ from the row's own label's profile
    i, v = np.argwhere((partner >= 0) & (lam < 0.9))[0]
    got = cache.teacher("a").dense_logits([i])[0, v]
    t = cache.teacher("a")
    vals, ids, rest = (
        t.read_rows(a, [i])[0, v]
        for a in (schema.TOPK_VALUES, schema.TOPK_INDICES, schema.TOPK_REST)
    )
    mixed = lam[i, v] * table[labels[i]] + (1 - lam[i, v]) * table[labels[partner[i, v]]]
    np.testing.assert_allclose(got, T.dense_view(vals, ids, rest, C, mixed), atol=1e-5)
    assert not np.allclose(got, T.dense_view(vals, ids, rest, C, table[labels[i]]), atol=1e-4)
    targets = load_targets(cache, "a", torch.device("cpu"))
    np.testing.assert_allclose(
        targets.logits_for(np.array([i]), np.array([v])).numpy()[0], got, atol=1e-5
    )
    # every pair, both readers: the profile of (row i, view v) is that of its own view's mix
    n = cache.num_samples
    vals, ids, rest = (
        t.reader(a).read_all() for a in (schema.TOPK_VALUES, schema.TOPK_INDICES, schema.TOPK_REST)
    )
    other = labels[np.where(partner >= 0, partner, np.arange(n)[:, None])]
    prof = lam[..., None] * table[labels][:, None] + (1 - lam[..., None]) * table[other]
    want = T.dense_view(vals, ids, rest, C, prof)  # [N, V, C]
    np.testing.assert_allclose(t.dense_logits(np.arange(n)), want, atol=1e-5)
    for view in range(2):
        rows, views = np.arange(n), np.full(n, view)
        np.testing.assert_allclose(
            targets.logits_for(rows, views).numpy(), want[:, view], atol=1e-5
        )


def test_the_error_of_mixed_views_is_measured_under_their_mixed_profiles(
    mixed: dict[str, Path],
) -> None:
    """Each chunk's recorded error is that of the targets readers rebuild: a mixed view's
    rest from lam b[y_i] + (1 - lam) b[y_partner], a view not mixed from b[y_i]."""
    cache = softlabels.open_cache(str(mixed["sparse"]))
    partner, lam, _box = cache.read_mix()
    table, labels = cache.teacher("a").rest_profile(), cache.labels
    got = _arrays(mixed["sparse"])
    z32 = _dense(mixed["float32"])
    prof = np.empty((len(labels), 2, C))
    for i in range(len(labels)):
        for v in range(2):
            prof[i, v] = table[labels[i]]
            if partner[i, v] >= 0:
                prof[i, v] = (
                    lam[i, v] * table[labels[i]] + (1 - lam[i, v]) * table[labels[partner[i, v]]]
                )
    assert ((partner >= 0) & (labels[np.maximum(partner, 0)] != labels[:, None])).sum() > 10
    for chunk in range(cache.num_chunks):
        rows = slice(chunk * CHUNK, (chunk + 1) * CHUNK)
        want = _recomputed_error(
            z32[rows], got[schema.TOPK_VALUES][rows], got[schema.TOPK_INDICES][rows],
            got[schema.TOPK_REST][rows], prof[rows],
        )  # fmt: skip
        np.testing.assert_allclose(got[schema.TOPK_ERROR][chunk], want, rtol=1e-4, atol=1e-9)


def test_the_chunks_the_profile_is_fitted_on_are_computed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sparse: Path
) -> None:
    """The teacher runs once per chunk: the chunks computed for the fit are the ones
    committed, not computed again (the same bytes either way)."""
    import inspect
    import sys

    dump_module = sys.modules["softlabels.teachers.dump"]
    run, starts = dump_module._run_chunk, []

    def counted(*args, **kw):
        starts.append(inspect.signature(run).bind(*args, **kw).arguments["start"])
        return run(*args, **kw)

    monkeypatch.setattr(dump_module, "_run_chunk", counted)
    out = tmp_path / "k3.slc"
    dump_to(out, views=2, topk=K)
    assert sorted(starts) == [0, 32, 64, 96, 128]
    assert cache_files(out) == cache_files(sparse)


def test_a_damaged_rest_profile_is_named_by_verify_and_refused_by_readers(
    sparse: Path, copy_of, cli
) -> None:
    out = copy_of(sparse)
    key = out / "teachers" / "a" / "topk" / "profile" / "c" / "0" / "0"
    flip_a_byte(key)
    result = cli("verify", out, "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["where"]) for p in problems] == [("checksum", "teachers/a/topk/profile")]
    with pytest.raises(CacheError, match="topk/profile"):
        softlabels.open_cache(str(out)).teacher("a").dense_logits([0])
    line = one_error_line(cli("tune-tau", out, "--teacher", "a", "--taus", "2", "--dry-run"))
    assert "topk/profile" in line
