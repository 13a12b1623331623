"""Issue 7, items 1 and 5: ``kill -9`` at random moments of a dump (single teacher, two
teachers, three augmented views, a sparse top-k teacher), then the same command again, with
no flag: the cache ends with the bytes of an uninterrupted dump, nothing committed before the
kill is lost. One writer per cache: the lock is an OS lock that dies with its holder, so a
dead writer never blocks the rerun; ``--break-lock`` stays for a holder that may still be
alive (documented).

A few seeded trials here; ``benchmarks/fault_injection.py --trials 20`` runs many more.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from softlabels_reliability_faults import (
    LOCK,
    SLEEP_ENV,
    committed_snapshot,
    compare_with_reference,
    dump_args,
    invoke,
    lost,
    one_error_line,
    run_kill_trial,
    run_repeated_kills,
    subprocess_env,
    wait_for,
)

# (kind, strategy): before the first commit, in the last chunk, and random moments. A sparse
# dump computes the chunks its rest profile is fitted on (here all five) before it commits
# any: "early" kills it while it fits, with nothing committed.
TRIALS = [("single", "early"), ("multi", "random"), ("views", "last"), ("sparse", "early")]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "strategy"), TRIALS, ids=[f"{k}-{s}" for k, s in TRIALS])
def test_killed_dump_resumes_to_identical_bytes(
    kind: str, strategy: str, tmp_path: Path, reference
) -> None:
    ref = reference(kind)
    # Seeded: multi-random is killed 0.04 s after chunk 2's commit, inside chunk 3.
    rng = random.Random(f"issue7-{kind}-{strategy}-4")
    trial = run_kill_trial(tmp_path / f"{kind}.slc", ref, kind, strategy, rng)
    report = json.dumps(trial.to_dict(), indent=1)
    assert trial.killed, f"the dump finished before the kill: {report}"
    if strategy == "early":
        assert trial.commits_before == 0, report
    if strategy == "last":
        assert trial.commits_before == 4, report  # chunks 0..3 committed, chunk 4 in flight
    if strategy == "random":
        assert trial.anchor == "manifest/chunk-000002.json" and trial.commits_before >= 3, report
    assert trial.damaged_after_kill == [], report  # a kill never damages committed chunks
    assert trial.lock_left, report  # the dead writer's lock file stays ...
    assert trial.resumed_exit == 0, report  # ... and blocks nothing: the same command resumes
    assert trial.rerun_notes == [], report  # (the OS released it: nothing to take over)
    # Nothing committed yet: the rerun creates; otherwise it resumes.
    assert trial.resumed_status == ("resumed" if trial.commits_before else "created"), report
    assert trial.differences == [], report  # every array chunk, record and table identical
    assert trial.lost == [], report


@pytest.mark.slow
def test_same_command_killed_again_and_again_ends_identical(tmp_path: Path, reference) -> None:
    """Three SIGKILLs of one dump at random moments, each followed by the same command, no
    flag: the cache ends byte-identical to an uninterrupted dump, nothing committed lost.
    (``benchmarks/fault_injection.py --repeat-kills 20`` runs twenty.)"""
    ref = reference("views")
    result = run_repeated_kills(tmp_path / "again.slc", ref, "views", 3, random.Random("again-2"))
    report = json.dumps(result.to_dict(), indent=1)
    assert result.delivered == 3, report  # every signal found the dump running
    assert result.damaged_after_kill == [] and result.lost == [], report
    assert result.resumed_exit == 0 and result.differences == [], report
    assert result.ok, report


@pytest.mark.slow
def test_second_dump_refused_while_first_runs_then_first_killed(tmp_path: Path, reference) -> None:
    """A real concurrent writer: the second dump is refused (even with --break-lock) and
    touches nothing. Then the first is killed after its first commit: its lock died with it,
    the same command resumes with no flag, and the resumed cache equals the reference."""
    ref = reference("single")
    out = tmp_path / "busy.slc"
    cmd = [sys.executable, "-m", "softlabels", *dump_args(out, "single"), "--json"]
    env = subprocess_env(**{SLEEP_ENV: "0.3"})  # 10 batches: ~3 s, killed after the checks
    first_record = out / "manifest" / "chunk-000000.json"
    with subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        try:
            wait_for(first_record.exists, proc, "first commit")
            snapshot = committed_snapshot(out)
            lock = json.loads((out / LOCK).read_text())
            assert lock["pid"] == proc.pid and lock["owner"] == "dump"
            refused = invoke(*dump_args(out, "single"), "--json")
            line = one_error_line(refused)
            assert f"process {proc.pid}" in line and "being written" in line, line
            refused = invoke(*dump_args(out, "single"), "--break-lock", "--json")
            assert "never breaks the lock of a live process" in one_error_line(refused)
            assert json.loads((out / LOCK).read_text()) == lock
            assert proc.poll() is None, "the first dump ended before the checks were done"
        finally:
            proc.kill()  # SIGKILL
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    snapshot |= committed_snapshot(out)
    assert json.loads((out / LOCK).read_text())["pid"] == proc.pid  # left by the dead writer
    resumed = invoke(*dump_args(out, "single"), "--json")  # the same command, no flag
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "resumed"
    assert compare_with_reference(out, ref) == []
    assert lost(snapshot, out) == []
    assert not (out / LOCK).exists()


def test_lock_file_of_a_dead_process(tmp_path: Path, reference, copy_of) -> None:
    """A lock file naming a process that is gone (same host) blocks no command; a lock file
    a live process holds on another host (as seen on a network folder) needs --break-lock."""
    ref = reference("single")
    out = copy_of(ref)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)

    (out / LOCK).write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "since": 0, "owner": "dump"})
    )
    snapshot = committed_snapshot(out)
    result = invoke(*dump_args(out, "single"), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "complete"
    assert not (out / LOCK).exists() and lost(snapshot, out) == []
    (out / LOCK).write_text(
        json.dumps({"pid": pid, "host": socket.gethostname(), "since": 0, "owner": "dump"})
    )
    tuned = invoke("tune-tau", out, "--taus", "2", "--device", "cpu", "--json")
    assert tuned.exit_code == 0, tuned.stderr
    assert not (out / LOCK).exists()
    assert compare_with_reference(out, ref) == ["differs zarr.json"]  # the stored choice

    # Held by a live process that names another host: refused, and --break-lock takes it.
    other = tmp_path / "other.slc"
    shutil.copytree(ref, other)
    code = (
        "import fcntl, json, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': 99, 'host': 'elsewhere', 'uuid': 'x'}).encode())\n"
        "print('held', flush=True); sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(other / LOCK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        line = one_error_line(invoke(*dump_args(other, "single"), "--json"))
        assert "process 99 on elsewhere" in line and "--break-lock" in line, line
        broken = invoke(*dump_args(other, "single"), "--break-lock", "--json")
        assert holder.stdin is not None
        holder.stdin.close()
    assert broken.exit_code == 0, broken.stderr
    notes = [ln for ln in broken.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "process 99 on elsewhere" in notes[0], broken.stderr
    assert json.loads(broken.stdout)["status"] == "complete"


def test_break_lock_is_documented() -> None:
    text = invoke("dump", "--help").stdout
    assert "--break-lock" in text and "stale lock" in text.replace("\n", " ")
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert "--break-lock" in readme.read_text()


def test_lock_file_is_exclusive_on_a_local_folder(tmp_path: Path) -> None:
    """flock: of many processes racing for one lock, exactly one gets it."""
    out = tmp_path / "race.slc"
    code = (
        "import sys, time\n"
        "from softlabels.stores._fs import resolve\n"
        "from softlabels.stores.lock import CacheLock\n"
        "from softlabels.errors import CacheLockedError\n"
        "lock = CacheLock(resolve(sys.argv[1]))\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "try:\n"
        "    lock.acquire()\n"
        "except CacheLockedError:\n"
        "    print('refused'); sys.exit(0)\n"
        "print('got it'); time.sleep(1.5)\n"
    )
    import time

    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(out), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for _ in range(3)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["got it", "refused", "refused"], outcomes


def test_resume_drops_the_temp_file_of_an_interrupted_metadata_write(reference, copy_of) -> None:
    """zarr's temp files left by a kill do not stay in the resumed cache."""
    ref = reference("single")
    root = copy_of(ref)
    (root / "manifest" / "chunk-000004.json").unlink()  # killed before the last commit ...
    partial = root / "zarr.0123456789abcdef0123456789abcdef.partial"
    partial.write_bytes(b'{\n  "attributes": {')  # ... and, earlier, inside a metadata write
    result = invoke(*dump_args(root, "single"), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["chunks_written"] == 1
    assert compare_with_reference(root, ref) == []
