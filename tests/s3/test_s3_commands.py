"""Every command that takes a cache, on ``s3://`` through fsspec against a real S3 endpoint
(moto's server on the loopback): dump, inspect, verify, tune-tau, calibrate, distill; the
endpoint from fsspec's own configuration or from ``--storage-options``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fsspec.config
import pytest
from softlabels_reliability_faults import (
    DATASET,
    REPO,
    Where,
    compare_with_reference,
    dump_args,
    invoke,
    one_error_line,
)
from softlabels_s3_server import S3Server

from softlabels import open_cache

pytestmark = pytest.mark.slow  # a few seconds each: every S3 request goes through HTTP


def _ok(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr[-2000:])
    return json.loads(result.stdout)


def test_dump_to_s3_is_the_local_cache_byte_for_byte(
    s3: S3Server, s3_cache: str, local_reference: Path, tmp_path: Path
) -> None:
    copy = Where(tmp_path / "copy.slc", s3)
    copy.target = s3_cache
    assert compare_with_reference(copy.local(), local_reference) == []
    assert not copy.exists(".softlabels.lock")  # released at the end
    again = _ok(invoke(*dump_args(s3_cache, "single"), "--json"))
    assert again["status"] == "complete" and again["url"] == s3_cache


def test_every_command_on_s3(s3: S3Server, s3_copy: str, tmp_path: Path) -> None:
    url = s3_copy
    info = _ok(invoke("inspect", url, "--json"))
    assert info["complete"] and info["url"] == url and info["N"] == 159
    report = _ok(invoke("verify", url, "--dataset", DATASET, "--json"))
    assert report["ok"] and report["fingerprint"]["match"] and report["chunks"] == 5
    tuned = _ok(invoke("tune-tau", url, "--taus", "1,2,4", "--powers", "1", "--device", "cpu",
                       "--json"))  # fmt: skip
    assert tuned["stored"]
    calibrated = _ok(invoke("calibrate", url, "--teacher", "a", "--method", "tau-norm",
                            "--json"))  # fmt: skip
    assert calibrated["teacher"] == "a+tau-norm"
    cache = open_cache(url)
    assert set(cache.teacher_names) == {"a", "a+tau-norm"}
    assert cache.meta["tune_tau"]["choice"]["tau"] == tuned["choice"]["tau"]
    assert _ok(invoke("verify", url, "--json"))["ok"]  # the added teacher verifies too
    summary = _ok(
        invoke("distill", url, "--dataset", DATASET, "--out", tmp_path / "run", "--method",
               "kd", "--model", "mlp", "--teacher", "a", "--tau", "auto", "--epochs", "1",
               "--batch-size", "32", "--device", "cpu", "--no-plots", "--json")
    )  # fmt: skip
    student = summary["students"][0]
    assert student["status"] == "ok" and student["hparams"]["tau"] == tuned["choice"]["tau"]
    assert not s3.fs().exists(f"{url}/.softlabels.lock")


def test_storage_options_flag_reaches_fsspec(
    s3: S3Server, s3_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without fsspec's configuration the endpoint comes from --storage-options (both the
    s3fs keyword and botocore's client_kwargs form)."""
    monkeypatch.delenv("FSSPEC_S3_ENDPOINT_URL")
    monkeypatch.setitem(fsspec.config.conf, "s3", {})
    for options in (
        {"endpoint_url": s3.endpoint},
        {"client_kwargs": {"endpoint_url": s3.endpoint}},
    ):
        given = json.dumps(options)
        assert _ok(invoke("inspect", s3_cache, "--storage-options", given, "--json"))["complete"]
        assert _ok(invoke("verify", s3_cache, "--storage-options", given, "--json"))["ok"]


@pytest.mark.parametrize(
    "command",
    [
        ["dump", "--dataset", DATASET, "--teacher", "a=cnn1d", "--out", "s3://b/c.slc"],
        ["inspect", "s3://b/c.slc"],
        ["verify", "s3://b/c.slc"],
        ["tune-tau", "s3://b/c.slc"],
        ["calibrate", "s3://b/c.slc", "--teacher", "a", "--method", "lws"],
        ["distill", "s3://b/c.slc", "--dataset", DATASET, "--out", "run", "--method", "ce",
         "--model", "mlp"],
    ],
    ids=lambda c: c[0],
)  # fmt: skip
@pytest.mark.parametrize("bad", ["{endpoint", '["a"]'])
def test_malformed_storage_options_is_one_line(command: list[str], bad: str) -> None:
    line = one_error_line(invoke(*command, "--storage-options", bad))
    assert "Expected --storage-options a JSON object" in line and bad in line, line


def _inspect_in_a_fresh_process(url: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "softlabels", "inspect", url, "--json"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_fsspec_environment_and_config_files_are_honoured(
    s3: S3Server, s3_cache: str, tmp_path: Path
) -> None:
    """A new process reads fsspec's configuration: FSSPEC_S3_ENDPOINT_URL, or a JSON file in
    FSSPEC_CONFIG_DIR, gives the endpoint with no flag."""
    env = {**os.environ, **s3.env}
    assert _inspect_in_a_fresh_process(s3_cache, env)["complete"]
    conf = tmp_path / "fsspec"
    conf.mkdir()
    (conf / "s3.json").write_text(json.dumps({"s3": {"endpoint_url": s3.endpoint}}))
    env.pop("FSSPEC_S3_ENDPOINT_URL")
    env["FSSPEC_CONFIG_DIR"] = str(conf)
    assert _inspect_in_a_fresh_process(s3_cache, env)["complete"]


def test_damaged_and_deleted_objects_are_named_by_verify(s3: S3Server, s3_copy: str) -> None:
    fs = s3.fs()
    logits = f"{s3_copy}/teachers/a/logits/c/1/0/0"
    data = bytearray(fs.cat_file(logits))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(logits, bytes(data))
    fs.rm(f"{s3_copy}/labels/c/2")
    result = invoke("verify", s3_copy, "--json")
    assert result.exit_code == 1, result.stderr
    problems = {(p["where"], p["chunk"], p["kind"]) for p in json.loads(result.stdout)["problems"]}
    assert ("teachers/a/logits", 1, "checksum") in problems, problems
    assert ("labels", 2, "missing") in problems, problems
    # Readers refuse a damaged cache with one line naming what is wrong.
    line = one_error_line(
        invoke("tune-tau", s3_copy, "--teacher", "a", "--taus", "2", "--dry-run", "--device",
               "cpu")
    )  # fmt: skip
    assert ("chunk 1 of teachers/a/logits" in line) or ("chunk 2 of labels" in line), line


def test_objects_written_by_another_process_are_seen(s3: S3Server, s3_copy: str) -> None:
    """Listings are not served from a stale cache: what another writer (a rank of the same
    job, a resumed dump) committed after this process looked is seen."""
    record = f"{s3_copy}/manifest/chunk-000003.json"
    other = s3.fs()  # another client: as good as another process
    saved = other.cat_file(record)
    other.rm(record)
    assert open_cache(s3_copy).missing_chunks()["labels"] == [3]  # this process lists it
    other.pipe_file(record, saved)  # ... and the other commits chunk 3
    assert open_cache(s3_copy).missing_chunks() == {}
