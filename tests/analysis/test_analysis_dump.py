"""tune-tau end to end on a real dump (random cnn1d teacher on a tiny long-tailed MNIST-1D)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from softlabels_analysis_helpers import cli_app, direct_v
from typer.testing import CliRunner

from softlabels import open_cache
from softlabels.teachers import DumpConfig, dump, parse_teacher

# 240 training samples (60 ... 6 per class): no "many" class, so thirds are used.
DATASET = "mnist1d-lt:imb=10,n_max=60,n_test=10"


def test_tune_tau_on_a_dumped_cache(tmp_path: Path) -> None:
    url = str(tmp_path / "mnist.slc")
    config = DumpConfig(
        dataset=DATASET,
        teachers=(parse_teacher("a=cnn1d"),),
        views=2,
        chunk_size=64,
        batch_size=64,
    )
    dump(config, url, device="cpu")
    runner = CliRunner()
    res = runner.invoke(
        cli_app(), ["tune-tau", url, "--taus", "1:4:1", "--json", "--device", "cpu"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["groups"] == "thirds" and data["num_views"] == 2
    cache = open_cache(url)
    z = np.asarray(cache.teacher("a").logits[...], dtype=np.float32)
    for g in data["grid"]:
        want = direct_v([z], g["tau"], g["power"])
        np.testing.assert_allclose(g["per_class"], want, rtol=2e-5, atol=1e-6)
    assert cache.meta["tune_tau"]["choice"]["tau"] == data["choice"]["tau"]
    info = runner.invoke(cli_app(), ["inspect", url, "--json"], catch_exceptions=False)
    assert json.loads(info.stdout)["tune_tau"]["teacher"] == "a"
