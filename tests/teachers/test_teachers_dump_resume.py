"""Crash and resume: an interrupted dump (SIGKILL, Ctrl-C, a crash between writing a chunk and
committing it) finishes, when the same command is rerun, with the bytes of an uninterrupted
dump."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from softlabels_teachers_helpers import (
    BATCH,
    CHUNK,
    DATASET,
    FIXTURE_NETS,
    HERE,
    LOCK,
    array_chunk_files,
    cache_files,
    dump_to,
    make_config,
    one_error_line,
)

import softlabels
from softlabels.teachers import dump

SLOW = f"a=py:{FIXTURE_NETS}:slow"


def _dump_args(out: Path, teacher: str = "a=cnn1d") -> list[object]:
    return [
        "dump", "--dataset", DATASET, "--teacher", teacher, "--out", out,
        "--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu",
    ]  # fmt: skip


def _visible(files: dict[str, bytes]) -> dict[str, bytes]:
    """Files without hidden names (temp files of interrupted atomic writes)."""
    return {k: v for k, v in files.items() if not any(p.startswith(".") for p in k.split("/"))}


@pytest.mark.slow
def test_sigkilled_dump_resumes_to_identical_bytes(tmp_path: Path, cli) -> None:
    reference = tmp_path / "uninterrupted.slc"
    dump_to(reference, SLOW)
    out = tmp_path / "killed.slc"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    env["SOFTLABELS_TEST_SLEEP"] = "0.15"  # per batch: 10 batches of 16 rows, 5 chunks
    cmd = [sys.executable, "-m", "softlabels", *map(str, _dump_args(out, SLOW)), "--json"]
    first_record = out / "manifest" / "chunk-000000.json"
    with subprocess.Popen(
        cmd, env=env, cwd=HERE.parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        deadline = time.monotonic() + 120
        try:
            while not first_record.exists():
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the dump never committed a chunk"
                time.sleep(0.005)
        finally:
            proc.kill()  # SIGKILL; a no-op when the process has already ended
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    cache = softlabels.open_cache(str(out))
    missing = cache.missing_chunks()
    assert missing, "the dump finished before it was killed: nothing to resume"
    pending = len(missing["labels"])
    assert 1 <= pending <= 4
    lock = json.loads((out / LOCK).read_text())
    assert lock["pid"] == proc.pid  # the file stays, but the OS lock died with its holder

    # The same command, no flag: a dead writer's lock never blocks the rerun.
    resumed = cli(*_dump_args(out, SLOW), "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr and "error" not in resumed.stderr
    doc = json.loads(resumed.stdout)
    assert doc["status"] == "resumed"
    assert doc["chunks_written"] == pending and doc["chunks_total"] == 5
    assert array_chunk_files(out) == array_chunk_files(reference)
    assert _visible(cache_files(out)) == cache_files(reference)
    assert not (out / LOCK).exists()
    assert cli("verify", out, "--json").exit_code == 0

    again = cli(*_dump_args(out, SLOW), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "complete"


def test_interrupted_in_process_dump_resumes(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "ctrl-c.slc"
    seen: list[int] = []

    def interrupt_after_two_chunks(done: int, total: int) -> None:
        seen.append(done)
        if done >= 2 * CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump(make_config(), str(out), device="cpu", progress=interrupt_after_two_chunks)
    cache = softlabels.open_cache(str(out))
    # The chunk being committed when the interrupt came is finished, not dropped.
    assert cache.missing_chunks()["labels"] == [2, 3, 4]
    assert not (out / LOCK).exists()  # a clean exit releases the lock
    assert cache.verify() and {p.kind for p in cache.verify()} == {"uncommitted"}

    result = dump_to(out)
    assert (result.status, result.chunks_written) == ("resumed", 3)
    assert cache_files(out) == cache_files(reference)


def test_crash_between_chunk_write_and_commit(
    tmp_path: Path, reference: Path, copy_of, cli
) -> None:
    """Whatever a crash left of uncommitted chunks (partial, missing, temp files) is redone."""
    out = copy_of(reference)
    (out / "manifest" / "chunk-000002.json").unlink()
    logits = out / "teachers" / "a" / "logits" / "c" / "2" / "0" / "0"
    logits.write_bytes(logits.read_bytes()[:7])  # a half-written chunk file
    (out / "labels" / "c" / "2").unlink()  # a chunk file never written
    # An atomic manifest write cut short: its temp file, not the record.
    record = out / "manifest" / "chunk-000004.json"
    (out / "manifest" / ".chunk-000004.json.0123abcd.tmp").write_bytes(record.read_bytes()[:10])
    record.unlink()
    (out / "teachers" / "a" / "features" / "c" / "4" / "0" / "0").write_bytes(b"junk")

    report = cli("verify", out, "--json")
    assert report.exit_code == 1
    problems = json.loads(report.stdout)["problems"]
    assert {(p["kind"], p["chunk"]) for p in problems} == {("uncommitted", 2), ("uncommitted", 4)}

    result = cli(*_dump_args(out), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["status"], doc["chunks_written"]) == ("resumed", 2)
    assert _visible(cache_files(out)) == cache_files(reference)
    assert cli("verify", out).exit_code == 0


def test_other_settings_are_refused_then_overwritten(reference: Path, copy_of, cli) -> None:
    out = copy_of(reference)
    before = cache_files(out)
    refused = cli(*_dump_args(out), "--dtype", "float32")
    line = one_error_line(refused)
    assert "other settings" in line and "dtype" in line and "--overwrite" in line
    assert cache_files(out) == before
    # A different chunk size or teacher is another cache too.
    one_error_line(cli(*_dump_args(out, "a=mlp")))
    replaced = cli(*_dump_args(out), "--dtype", "float32", "--overwrite", "--json")
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads(replaced.stdout)["status"] == "created"
    cache = softlabels.open_cache(str(out))
    assert cache.teacher("a").logits.dtype == "float32" and cache.is_complete()


def test_resume_with_another_batch_size(tmp_path: Path) -> None:
    wholes = {}
    for batch in (BATCH, 7):
        whole = tmp_path / f"whole-{batch}.slc"
        dump(make_config(dtype="float32", batch_size=batch), str(whole), device="cpu")
        wholes[batch] = array_chunk_files(whole)
    if wholes[BATCH] == wholes[7]:
        pytest.skip("on this machine the batch size does not change the logits' bits")

    out = tmp_path / "mixed.slc"

    def stop_after_two_chunks(done: int, total: int) -> None:
        if done >= 2 * CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump(make_config(dtype="float32"), str(out), device="cpu", progress=stop_after_two_chunks)
    try:
        dump(make_config(dtype="float32", batch_size=7), str(out), device="cpu")
    except softlabels.errors.CacheExistsError:
        return  # refusing to mix two batch sizes is a fix
    assert array_chunk_files(out) in (wholes[BATCH], wholes[7]), (
        "the resumed cache mixes the logits of two batch sizes"
    )
