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
    """The rule's dense view from the stored arrays, written out pair by pair: the K values
    at their ids; on the rest, the pair's label profile centred and scaled to the stored
    std, shifted so that the rest's log-sum-exp is the stored one."""
    cache = open_cache(url)
    t = cache.teacher("a")
    values = t.reader(schema.TOPK_VALUES).read_all().astype(np.float64)
    ids = t.reader(schema.TOPK_INDICES).read_all().astype(np.int64)
    rest = t.reader(schema.TOPK_REST).read_all().astype(np.float64)
    table = t.read_static(schema.TOPK_PROFILE).astype(np.float64)
    c = cache.num_classes
    z = np.empty((*values.shape[:-1], c))
    for i, y in enumerate(cache.labels):
        for v in range(values.shape[1]):
            out = np.setdiff1d(np.arange(c), ids[i, v])
            p = table[y, out] - table[y, out].mean()
            r = rest[i, v, 1] / p.std() * p
            z[i, v, out] = rest[i, v, 0] - np.log(np.exp(r).sum()) + r
            z[i, v, ids[i, v]] = values[i, v]
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
    assert data["rebuilt"] == {"a": {"k": K, "rule": "label-profile", "rule_version": 2}}
    z = _by_hand(url)
    for g in data["grid"]:
        want = direct_v([z], g["tau"], g["power"])
        np.testing.assert_allclose(g["per_class"], want, rtol=2e-5, atol=1e-6)
    text = runner.invoke(cli_app(), args, catch_exceptions=False)
    assert text.exit_code == 0
    assert "stored top-3: V comes from the distributions rebuilt by rule label-profile" in " ".join(
        text.stdout.split()
    )
