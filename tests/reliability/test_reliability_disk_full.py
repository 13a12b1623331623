"""Issue 7, item 4: a full disk ends the dump with one line (exit 1), keeps every committed
chunk, and the same command resumes once there is space, to the bytes of an uninterrupted
dump. Simulated by failing the k-th write with ENOSPC (in-process), and for real on a tiny
tmpfs in a private mount namespace where the machine allows one."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from softlabels_reliability_faults import (
    HERE,
    LOCK,
    compare_with_reference,
    count_writes,
    run_disk_full_trial,
    subprocess_env,
    tmpfs_available,
)


@pytest.fixture(scope="module")
def write_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The writes of an uninterrupted dump, by kind, in order (the injection points)."""
    root = tmp_path_factory.mktemp("count-writes")
    return {k: count_writes(root / f"{k}.slc", k) for k in ("single", "views")}


def _points(keys: list[str]) -> dict[str, int]:
    """Named injection points: the first and last of each phase of a dump."""
    first = {
        name: next(i for i, k in enumerate(keys) if pred(k))
        for name, pred in {
            # the first group or array document below the root (the store writes them)
            "group": lambda k: k.endswith("/zarr.json"),
            "table": lambda k: k.endswith(".parquet"),
            "tables-record": lambda k: k == "manifest/tables.json",
            # encoded by the store and written whole since the dump speed-up (zarr before)
            "static-array": lambda k: "/classifier/weight/c/" in k,
            "static-record": lambda k: k == "manifest/static.json",
            "first-chunk-file": lambda k: k == "labels/c/0",
            "first-chunk-record": lambda k: k == "manifest/chunk-000000.json",
            "middle-chunk-logits": lambda k: k.startswith("teachers/a/logits/c/2/"),
        }.items()
    }
    return first | {"last-chunk-record": len(keys) - 1, "last-chunk-file": len(keys) - 2}


def test_every_write_is_counted(write_keys: dict[str, list[str]]) -> None:
    keys = write_keys["single"]
    assert keys[-1] == "manifest/chunk-000004.json"
    assert sum(k.startswith("manifest/chunk-") for k in keys) == 5
    assert {"samples.parquet", "classes.parquet", "manifest/static.json"} <= set(keys)
    assert sum(k.endswith("/zarr.json") for k in keys) >= 10


POINTS = [
    ("single", "group"),
    ("single", "table"),
    ("single", "tables-record"),
    ("single", "static-array"),
    ("single", "static-record"),
    ("single", "first-chunk-file"),
    ("single", "first-chunk-record"),
    ("single", "middle-chunk-logits"),
    ("single", "last-chunk-file"),
    ("single", "last-chunk-record"),
    ("views", "middle-chunk-logits"),
    ("views", "last-chunk-record"),
]


@pytest.mark.parametrize(("kind", "point"), POINTS, ids=[f"{k}-{p}" for k, p in POINTS])
def test_disk_full_at_a_write(kind: str, point: str, write_keys, reference, tmp_path: Path) -> None:
    fail_at = _points(write_keys[kind])[point]
    trial = run_disk_full_trial(tmp_path / "c.slc", reference(kind), kind, fail_at)
    report = json.dumps(trial.to_dict(), indent=1)
    assert trial.exit_code == 1, report
    assert trial.error.startswith("error: writing the cache"), report  # one line, no traceback
    assert "No space left on device" in trial.error and "rerun" in trial.error, report
    assert "every chunk committed before is kept" in trial.error, report
    assert not trial.lock_left, report  # a live process that failed releases its lock
    assert trial.lost == [], report  # committed chunks untouched by the failure and the resume
    assert trial.resumed_exit == 0, report
    assert trial.differences == [], report


def test_disk_full_at_random_writes(write_keys, reference, tmp_path: Path) -> None:
    """A few more injection points, seeded, over the chunk phase of a dump."""
    keys = write_keys["single"]
    start = keys.index("manifest/static.json") + 1
    for fail_at in random.Random("issue7-enospc").sample(range(start, len(keys)), 3):
        trial = run_disk_full_trial(
            tmp_path / f"c{fail_at}.slc", reference("single"), "single", fail_at
        )
        assert trial.ok, json.dumps(trial.to_dict(), indent=1)


def _root_writes(keys: list[str]) -> list[int]:
    """Writes of the root zarr.json (attributes), through zarr or softlabels' atomic write."""
    return [i for i, k in enumerate(keys) if k == "zarr.json" or k.endswith(".slc/zarr.json")]


def test_the_root_document_is_written_once(write_keys) -> None:
    """The store writes the arrays' and groups' documents itself: the root document, with
    the cache's attributes, is written once (zarr's path rewrote it while creating arrays)."""
    assert len(_root_writes(write_keys["single"])) == 1


def test_disk_full_while_zarr_rewrites_the_root_document(
    reference, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where zarr creates the arrays (a zarr without the metadata builders the store uses),
    it rewrites the root document meanwhile: a failure there resumes, to the same bytes as
    the store's own documents."""
    import softlabels.stores.writer as writer

    monkeypatch.setattr(writer, "_metadata_documents", lambda: None)
    keys = count_writes(tmp_path / "count.slc", "single")
    later = _root_writes(keys)[1:]
    assert later
    for k in later[:3]:
        trial = run_disk_full_trial(tmp_path / f"c{k}.slc", reference("single"), "single", k)
        assert trial.ok, json.dumps(trial.to_dict(), indent=1)


def test_disk_full_in_the_first_write(write_keys, reference, tmp_path) -> None:
    """The first write of a dump (the root document with its attributes) fails: resumable."""
    first = _root_writes(write_keys["single"])[0]
    trial = run_disk_full_trial(tmp_path / "c.slc", reference("single"), "single", first)
    assert trial.exit_code == 1 and "No space left" in trial.error
    assert trial.resumed_exit == 0, trial.resumed_error
    assert trial.differences == []


def test_disk_full_before_the_views_group_document(write_keys, reference, tmp_path) -> None:
    """A resumed dump also writes the group documents a failure left out."""
    keys = write_keys["single"]
    fail_at = next(i for i, k in enumerate(keys) if k.endswith("views/zarr.json"))
    trial = run_disk_full_trial(tmp_path / "c.slc", reference("single"), "single", fail_at)
    assert trial.resumed_exit == 0, trial.resumed_error
    assert trial.differences == []


@pytest.mark.slow
def test_real_full_disk_on_a_tiny_tmpfs(reference, tmp_path: Path) -> None:
    why = tmpfs_available()
    if why:
        pytest.skip(why)
    ref = reference("single")
    mount, save = tmp_path / "mnt", tmp_path / "saved"
    save.mkdir()
    # 128 KiB: the folders, metadata and tables fit, the disk fills within the chunks.
    cmd = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        sys.executable,
        str(HERE / "softlabels_reliability_tmpfs.py"),
        str(mount),
        str(save),
        "single",
        "128k",
        "4m",
    ]
    proc = subprocess.run(
        cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    first, second = report["first"], report["second"]
    lines = [ln for ln in first["stderr"].splitlines() if ln.strip()]
    assert first["exit"] == 1 and len(lines) == 1, first
    assert lines[0].startswith("error: writing the cache") and "No space left" in lines[0]
    assert 1 <= len(report["committed_before"]) < 5, report  # it filled up mid-dump
    assert report["lost"] == []
    assert second["exit"] == 0, second
    resumed = save / "resumed.slc"
    assert compare_with_reference(resumed, ref) == []
    assert not (resumed / LOCK).exists()
