"""Caches on fsspec URLs through every command: ``file://`` and ``memory://``.

``tests/cli`` already runs dump -> inspect -> verify on ``memory://``; here the rest of the
path (tune-tau storing its choice, distill with ``--tau auto``) runs there, and the whole path
runs on a ``file://`` URL.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import fsspec
from softlabels_distributed_helpers import DATASET
from typer.testing import CliRunner, Result

from softlabels import open_cache
from softlabels.cli.app import app


def _cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _ok(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _tune_and_distill(url: str, run: Path) -> dict[str, Any]:
    tuned = _ok(
        _cli("tune-tau", url, "--taus", "1,2,4", "--powers", "1", "--device", "cpu", "--json")
    )
    assert tuned["stored"]
    assert open_cache(url).meta["tune_tau"]["choice"]["tau"] == tuned["choice"]["tau"]
    summary = _ok(
        _cli(
            "distill", url, "--dataset", DATASET, "--out", run, "--method", "kd", "--model",
            "mlp", "--tau", "auto", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
            "--no-plots", "--json",
        )
    )  # fmt: skip
    student = summary["students"][0]
    assert student["status"] == "ok"
    assert student["hparams"]["tau"] == tuned["choice"]["tau"]
    return summary


def _dump(url: str) -> dict[str, Any]:
    return _ok(
        _cli(
            "dump", "--dataset", DATASET, "--teacher", "a=cnn1d", "--out", url, "--views", "2",
            "--chunk-size", "64", "--device", "cpu", "--json",
        )
    )  # fmt: skip


def test_file_url_through_every_command(tmp_path: Path) -> None:
    folder = tmp_path / "c.slc"
    url = f"file://{folder}"
    dumped = _dump(url)
    assert dumped["url"] == str(folder) and (folder / "zarr.json").is_file()
    assert _ok(_cli("inspect", url, "--json"))["complete"]
    report = _ok(_cli("verify", url, "--dataset", DATASET, "--json"))
    assert report["ok"] and report["fingerprint"]["match"]
    _tune_and_distill(url, tmp_path / "run")
    # The plain path and the URL are one cache.
    assert open_cache(str(folder)).meta["tune_tau"] is not None
    assert _dump(url)["status"] == "complete"


def test_memory_url_tune_tau_and_distill(tmp_path: Path) -> None:
    root = f"softlabels-dist-{uuid.uuid4().hex}"
    url = f"memory://{root}/c.slc"
    try:
        assert _dump(url)["status"] == "created"
        _tune_and_distill(url, tmp_path / "run")
        assert _ok(_cli("verify", url, "--json"))["ok"]  # the stored choice broke nothing
        # The fingerprint check reads the metadata through the URL like everything else.
        other = _cli(
            "distill", url, "--dataset", "mnist1d-lt:imb=10,n_max=40,n_test=6,seed=1", "--out",
            tmp_path / "other", "--method", "ce", "--model", "mlp", "--epochs", "1", "--device",
            "cpu",
        )  # fmt: skip
        assert other.exit_code == 2 and "built for another dataset" in other.stderr
    finally:
        fs = fsspec.filesystem("memory")
        if fs.exists(f"/{root}"):
            fs.rm(f"/{root}", recursive=True)
