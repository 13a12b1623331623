"""``softlabels verify`` and ``softlabels inspect`` on sound, damaged, incomplete and foreign
caches, and the whole dump -> inspect -> verify path on a ``memory://`` URL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import zarr
from softlabels_cli_helpers import DATASET, OTHER_DATASET, dump_args, one_error_line

import softlabels
from softlabels.data import load_dataset
from softlabels.errors import FingerprintMismatchError


def _verify(cli, cache: Path | str, *extra: object) -> tuple[int, dict]:
    result = cli("verify", cache, "--json", *extra)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def _problems(report: dict) -> set[tuple[str, str, int | None]]:
    return {(p["kind"], p["where"], p["chunk"]) for p in report["problems"]}


def test_sound_cache_verifies(cache: Path, cli) -> None:
    code, report = _verify(cli, cache)
    assert code == 0 and report["ok"] is True and report["problems"] == []
    assert report["chunks"] == 5 and report["fingerprint"] is None
    # 5 chunks x 4 row arrays, 2 tables, 2 classifier arrays, 6 array metadata documents.
    assert report["files_checked"] == 5 * 4 + 2 + 2 + 6
    text = cli("verify", cache)
    assert text.exit_code == 0 and text.stdout.startswith("ok:") and "5 chunks" in text.stdout


def test_corrupt_chunk_is_named(cache: Path, cli) -> None:
    chunk = cache / "teachers" / "a" / "logits" / "c" / "2" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    code, report = _verify(cli, cache)
    assert code == 1 and report["ok"] is False
    assert _problems(report) == {("checksum", "teachers/a/logits", 2)}
    assert "teachers/a/logits/c/2/0/0" in report["problems"][0]["message"]
    text = cli("verify", cache)
    assert text.exit_code == 1 and "checksum" in text.stdout and "teachers/a/logits" in text.stdout
    # Readers refuse the chunk as well, naming it.
    with pytest.raises(
        softlabels.errors.ChecksumMismatchError, match="chunk 2 of teachers/a/logits"
    ):
        softlabels.open_cache(str(cache)).teacher("a").reader().read_all()


def test_truncated_and_deleted_chunks(cache: Path, cli) -> None:
    features = cache / "teachers" / "a" / "features" / "c" / "1" / "0" / "0"
    features.write_bytes(features.read_bytes()[:-9])
    (cache / "labels" / "c" / "3").unlink()
    code, report = _verify(cli, cache)
    assert code == 1
    assert _problems(report) == {
        ("size", "teachers/a/features", 1),
        ("missing", "labels", 3),
    }


def test_damaged_samples_table(cache: Path, cli) -> None:
    table = cache / "samples.parquet"
    data = bytearray(table.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4] = b"\x00\xff\x00\xff"
    table.write_bytes(bytes(data))
    code, report = _verify(cli, cache)
    assert code == 1
    assert _problems(report) == {("checksum", "samples.parquet", None)}
    table.unlink()
    code, report = _verify(cli, cache)
    assert code == 1
    assert _problems(report) == {("missing", "samples.parquet", None)}


def test_fingerprint_mismatch(cache: Path, cli, dataset) -> None:
    other = load_dataset(OTHER_DATASET)
    code, report = _verify(cli, cache, "--dataset", OTHER_DATASET)
    assert code == 1
    fp = report["fingerprint"]
    assert fp["match"] is False
    assert fp["cache"] == dataset.train.fingerprint()
    assert fp["dataset"] == other.train.fingerprint() != fp["cache"]
    (problem,) = report["problems"]
    assert problem["kind"] == "fingerprint"
    assert fp["cache"][:16] in problem["message"] and fp["dataset"][:16] in problem["message"]

    code, report = _verify(cli, cache, "--dataset", DATASET)
    assert code == 0 and report["fingerprint"]["match"] is True

    opened = softlabels.open_cache(str(cache))
    with pytest.raises(FingerprintMismatchError) as err:
        softlabels.check_dataset(opened, other)
    assert fp["cache"][:16] in str(err.value) and fp["dataset"][:16] in str(err.value)
    assert isinstance(err.value, ValueError)  # also a builtin, for plain except clauses
    softlabels.check_dataset(opened, dataset)


def test_verify_usage_errors(tmp_path: Path, cache: Path, cli) -> None:
    line = one_error_line(cli("verify", tmp_path / "nothing-here", "--json"))
    assert "does not exist" in line
    line = one_error_line(cli("verify", cache, "--dataset", "nosuchset-lt", "--json"))
    assert "nosuchset-lt" in line
    not_cache = tmp_path / "plain"
    not_cache.mkdir()
    (not_cache / "x.txt").write_text("x")
    assert "not a softlabels cache" in one_error_line(cli("inspect", not_cache))


def test_inspect_json(cache: Path, cli, dataset) -> None:
    result = cli("inspect", cache, "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["N"], info["C"], info["V"]) == (159, 10, 1)
    assert (info["chunk_size"], info["chunks"], info["format"]) == (32, 5, 1)
    assert info["complete"] is True and info["missing_chunks"] == {}
    assert info["dataset"]["fingerprint"] == dataset.train.fingerprint()
    assert info["dataset"]["split"] == "train"
    (t,) = info["teachers"]
    assert (t["name"], t["model"], t["dtype"]) == ("a", "cnn1d", "float16")
    assert t["logits_shape"] == [159, 1, 10] and t["features_shape"][:2] == [159, 1]
    assert t["classifier"] == "linear" and t["complete"] is True
    assert 0 < t["bytes_on_disk"] < info["bytes_on_disk"]
    assert t["bytes_per_sample"] == pytest.approx(t["bytes_on_disk"] / 159)
    counts = dataset.class_counts("train")
    classes = info["classes"]
    assert classes["counts_max"] == counts.max() == 40
    assert classes["counts_min"] == counts.min() == 4
    assert classes["imbalance"] == pytest.approx(10.0)
    assert sum(classes["groups"].values()) == 10
    text = cli("inspect", cache)
    assert text.exit_code == 0 and "teachers" in text.stdout and "cnn1d" in text.stdout


def test_inspect_and_verify_an_incomplete_cache(cache: Path, cli) -> None:
    for c in (3, 4):
        (cache / "manifest" / f"chunk-00000{c}.json").unlink()
    info = json.loads(cli("inspect", cache, "--json").stdout)
    assert info["complete"] is False
    assert info["missing_chunks"] == {
        "labels": 2, "views/seed": 2, "teachers/a/logits": 2, "teachers/a/features": 2,
    }  # fmt: skip
    assert info["teachers"][0]["complete"] is False
    assert "classes" not in info  # class counts need every label chunk
    text = cli("inspect", cache)
    assert text.exit_code == 0 and "no" in text.stdout
    code, report = _verify(cli, cache)
    assert code == 1 and {p["kind"] for p in report["problems"]} == {"uncommitted"}
    assert {p["chunk"] for p in report["problems"]} == {3, 4}
    with pytest.raises(softlabels.errors.IncompleteCacheError, match="rerun"):
        softlabels.open_cache(str(cache)).require_complete()


def test_memory_url_dump_inspect_verify(reference: Path, cli) -> None:
    url = f"memory://softlabels-cli-{uuid.uuid4().hex}/c.slc"
    try:
        result = cli(*dump_args(url), "--json")
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["status"] == "created" and doc["url"] == url and doc["bytes_on_disk"] > 0

        info = json.loads(cli("inspect", url, "--json").stdout)
        assert info["complete"] is True and info["N"] == 159 and info["url"] == url
        code, report = _verify(cli, url, "--dataset", DATASET)
        assert code == 0 and report["ok"] is True

        cache = softlabels.open_cache(url)
        local = zarr.open_group(str(reference), mode="r")
        np.testing.assert_array_equal(
            cache.teacher("a").logits[...], local["teachers/a/logits"][...]
        )
        np.testing.assert_array_equal(cache.labels, local["labels"][...])
        assert cache.is_complete()

        again = cli(*dump_args(url), "--json")
        assert json.loads(again.stdout)["status"] == "complete"

        # Damage in memory is found as on disk.
        fs = fsspec.filesystem("memory")
        key = url.removeprefix("memory://") + "/teachers/a/logits/c/1/0/0"
        fs.pipe_file(key, fs.cat_file(key)[:-1])
        code, report = _verify(cli, url)
        assert code == 1 and _problems(report) == {("size", "teachers/a/logits", 1)}
    finally:
        fs = fsspec.filesystem("memory")
        root = url.removeprefix("memory://").split("/")[0]
        if fs.exists(root):
            fs.rm(root, recursive=True)
