"""tune-tau on a sparse (top-k) teacher: V from the rebuilt distributions, and it says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
from softlabels_analysis_helpers import cli_app, direct_v
from typer.testing import CliRunner

from softlabels import open_cache
from softlabels.stores import schema
from softlabels.teachers import DumpConfig, dump, parse_teacher

DATASET = "mnist1d-lt:imb=10,n_max=60,n_test=10"
K = 3


def _by_hand(url: str) -> np.ndarray:
    """The rule's dense view from the stored arrays, written out: the K values at their ids,
    log(sum of the rest's exp) - log(C - K) elsewhere."""
    t = open_cache(url).teacher("a")
    values = t.reader(schema.TOPK_VALUES).read_all().astype(np.float64)
    ids = t.reader(schema.TOPK_INDICES).read_all().astype(np.int64)
    lse = t.reader(schema.TOPK_REST).read_all()[..., 0].astype(np.float64)
    c = open_cache(url).num_classes
    z = np.repeat((lse - np.log(c - K))[..., None], c, axis=-1)
    np.put_along_axis(z, ids, values, axis=-1)
    return z


@pytest.fixture(scope="module")
def sparse_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("topk") / "sparse.slc")
    config = DumpConfig(
        dataset=DATASET,
        teachers=(parse_teacher("a=cnn1d"),),
        views=2,
        chunk_size=64,
        batch_size=64,
        topk=K,
    )
    dump(config, url, device="cpu")
    return url


def test_tune_tau_on_a_sparse_teacher_uses_rebuilt_distributions(sparse_url: str) -> None:
    url = sparse_url
    runner = CliRunner()
    args = ["tune-tau", url, "--taus", "1:4:1", "--device", "cpu", "--dry-run"]
    res = runner.invoke(cli_app(), [*args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["rebuilt"] == {"a": {"k": K, "rule": "equal-rest", "rule_version": 1}}
    z = _by_hand(url)
    for g in data["grid"]:
        want = direct_v([z], g["tau"], g["power"])
        np.testing.assert_allclose(g["per_class"], want, rtol=2e-5, atol=1e-6)
    text = runner.invoke(cli_app(), args, catch_exceptions=False)
    assert text.exit_code == 0
    assert "stored top-3: V comes from the distributions rebuilt by rule equal-rest" in " ".join(
        text.stdout.split()
    )


def test_sparse_pass_never_builds_the_dense_view(
    sparse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """V of a sparse teacher comes from its K values and rest in closed form: no [rows, C]
    dense view is built (any chunk's would go through stores.topk.dense_view)."""
    from softlabels.analysis import virtual_examples
    from softlabels.stores import topk

    want = virtual_examples(sparse_url, taus=(1.0, 2.0, 4.0), powers=(1.0, 0.5))

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("dense view built")

    monkeypatch.setattr(topk, "dense_view", refuse)
    got = virtual_examples(sparse_url, taus=(1.0, 2.0, 4.0), powers=(1.0, 0.5))
    z = _by_hand(sparse_url)
    for g, w in zip(got.grid, want.grid, strict=True):
        np.testing.assert_array_equal(g.per_class, w.per_class)
        np.testing.assert_allclose(g.per_class, direct_v([z], g.tau, g.power), rtol=2e-5)
