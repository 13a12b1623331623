"""``softlabels dump`` user mistakes: one line on stderr, exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from softlabels_cli_helpers import DATASET, LOCK, dump_args, one_error_line, tree

from softlabels.stores._fs import resolve
from softlabels.stores.lock import CacheLock

BASE = ["--chunk-size", "32", "--batch-size", "16", "--device", "cpu"]

# (arguments after `dump --out OUT`, words the error line must hold)
BAD = {
    "unknown dataset": (["--dataset", "nosuchset-lt", "--teacher", "a=cnn1d"], ["nosuchset-lt"]),
    "malformed dataset spec": (["--dataset", "mnist1d-lt:imb", "--teacher", "a=cnn1d"], ["key=value"]),
    "bad dataset value": (["--dataset", "mnist1d-lt:imb=x", "--teacher", "a=cnn1d"], ["imb"]),
    "unknown model": (["--dataset", DATASET, "--teacher", "a=nosuchnet"], ["nosuchnet"]),
    "missing checkpoint": (["--dataset", DATASET, "--teacher", "a=runs/none/model.pt"], ["runs/none/model.pt"]),
    "teacher without '='": (["--dataset", DATASET, "--teacher", "cnn1d"], ["NAME=MODEL", "cnn1d"]),
    "teacher without model": (["--dataset", DATASET, "--teacher", "a="], ["'a'"]),
    "bad teacher name": (["--dataset", DATASET, "--teacher", "a/b=cnn1d"], ["'a/b'"]),
    "duplicate teacher names": (
        ["--dataset", DATASET, "--teacher", "a=cnn1d", "--teacher", "a=mlp"], ["distinct"],
    ),
    "views -1": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--views", "-1"], ["--views", "-1"]),
    "views not an integer": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--views", "two"], ["--views"]),
    "dtype float64": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--dtype", "float64"], ["--dtype", "float64"]),
    "chunk size 0": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--chunk-size", "0"], ["--chunk-size"]),
    "batch size 0": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--batch-size", "0"], ["--batch-size"]),
    "unknown split": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--split", "val"], ["--split", "val"]),
    "unknown compressor": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--compressor", "lz4"], ["lz4"]),
    "unknown strength": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--strength", "wild"], ["wild"]),
    "bad device": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--device", "tpu9"], ["--device"]),
    "unknown option": (["--dataset", DATASET, "--teacher", "a=cnn1d", "--viewz", "2"], ["--viewz"]),
    "no teacher": (["--dataset", DATASET], ["--teacher"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2(case: str, tmp_path: Path, cli) -> None:
    args, words = BAD[case]
    out = tmp_path / "c.slc"
    # Defaults first so the case's own value of an option wins (the last one counts).
    result = cli("dump", "--out", out, *BASE, *args, "--json")
    line = one_error_line(result)
    assert result.stderr.strip() == line  # --json: no progress bar, only the error
    for word in words:
        assert word in line, line
    assert result.stdout == ""
    assert not out.exists()  # nothing created for a command that could not start


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu(tmp_path: Path, cli) -> None:
    out = tmp_path / "c.slc"
    line = one_error_line(cli(*dump_args(out), "--device", "cuda", "--json"))
    assert "no CUDA device" in line and "--device cpu" in line
    assert not out.exists()


def test_no_progress_bar_before_an_input_error(tmp_path: Path, cli) -> None:
    """Without --json the progress bar starts only with the work: stderr is the error alone."""
    result = cli("dump", "--out", tmp_path / "c.slc", *BASE, "--dataset", "nosuchset-lt",
                 "--teacher", "a=cnn1d")  # fmt: skip
    line = one_error_line(result)
    assert "nosuchset-lt" in line
    assert result.stderr.strip() == line


def test_existing_non_cache_folder_is_refused_and_untouched(tmp_path: Path, cli) -> None:
    folder = tmp_path / "photos"
    (folder / "2024").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "2024" / "a.bin").write_bytes(os.urandom(64))
    (folder / "zarr.json").write_text("{}")  # even a zarr-looking file does not make a cache
    before = tree(folder)
    for extra in ([], ["--overwrite"], ["--break-lock"]):
        line = one_error_line(cli(*dump_args(folder), *extra, "--json"))
        assert "not a softlabels cache" in line and "--out" in line
        assert tree(folder) == before
    assert not (folder / LOCK).exists()


def test_out_is_an_existing_file(tmp_path: Path, cli) -> None:
    target = tmp_path / "data.csv"
    target.write_text("a,b\n1,2\n")
    line = one_error_line(cli(*dump_args(target), "--json"))
    assert str(target) in line
    assert target.read_text() == "a,b\n1,2\n"


def test_hidden_files_of_an_out_folder_survive(tmp_path: Path, cli) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ".keep").write_text("mine")
    first = cli(*dump_args(folder), "--json")
    if first.exit_code == 2:  # refusing such a folder is a fix too
        assert (folder / ".keep").read_text() == "mine"
        return
    assert first.exit_code == 0, first.stderr
    replaced = cli(*dump_args(folder), "--dtype", "float32", "--overwrite", "--json")
    assert replaced.exit_code == 0, replaced.stderr
    assert (folder / ".keep").exists(), "--overwrite deleted a file the cache never owned"


def test_second_writer_is_refused(cache: Path, cli) -> None:
    before = {k: v[0] for k, v in tree(cache).items()}
    with CacheLock(resolve(str(cache)), owner="test"):
        lock_doc = json.loads((cache / LOCK).read_text())
        assert lock_doc["pid"] == os.getpid()
        line = one_error_line(cli(*dump_args(cache), "--json"))
        assert f"process {os.getpid()}" in line and "being written" in line
        # --break-lock never breaks a live writer's lock.
        line = one_error_line(cli(*dump_args(cache), "--break-lock", "--json"))
        assert "live process" in line
        assert json.loads((cache / LOCK).read_text()) == lock_doc
        # Readers are not blocked by the writer's lock.
        assert cli("verify", cache, "--json").exit_code == 0
        assert cli("inspect", cache, "--json").exit_code == 0
    after = {k: v[0] for k, v in tree(cache).items()}
    assert after == {k: v for k, v in before.items() if k != LOCK}
    assert not (cache / LOCK).exists()


def test_second_writer_refused_on_a_new_cache(tmp_path: Path, cli) -> None:
    out = tmp_path / "new.slc"
    with CacheLock(resolve(str(out))):
        line = one_error_line(cli(*dump_args(out), "--json"))
        assert "being written" in line
        assert sorted(p.name for p in out.iterdir()) == [LOCK]


def test_unreadable_lock_does_not_block_the_rerun(cache: Path, cli) -> None:
    """A writer killed between creating the lock file and naming itself in it leaves an
    empty file that no process holds: the same command simply runs (no --break-lock)."""
    (cache / LOCK).write_bytes(b"")
    result = cli(*dump_args(cache), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "complete"
    assert not (cache / LOCK).exists()
    (cache / LOCK).write_bytes(b"")  # --break-lock has nothing to break either
    result = cli(*dump_args(cache), "--break-lock", "--json")
    assert result.exit_code == 0, result.stderr
    assert not (cache / LOCK).exists()


@pytest.mark.parametrize(
    ("dataset", "model"),
    [(DATASET, "resnet32"), ("digits-lt", "cnn1d")],
    ids=["2d-model-on-signals", "1d-model-on-images"],
)
def test_teacher_that_does_not_fit_the_inputs(tmp_path: Path, cli, dataset, model) -> None:
    out = tmp_path / "c.slc"
    result = cli("dump", "--out", out, *BASE, "--dataset", dataset, "--teacher", f"a={model}",
                 "--json")  # fmt: skip
    line = one_error_line(result)
    assert model in line
    assert not out.exists()
