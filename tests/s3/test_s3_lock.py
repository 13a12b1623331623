"""The lease on S3: a SIGKILLed dump resumed once its lease expired, a dead holder of this
host taken over at once, and a live holder that keeps renewing keeps the cache (the second
writer is refused) until it stalls past its lease and loses it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from softlabels_reliability_faults import (
    LOCK,
    REPO,
    SLEEP_ENV,
    Where,
    committed_snapshot,
    compare_with_reference,
    dump_args,
    invoke,
    lost,
    one_error_line,
    subprocess_env,
    wait_for,
)
from softlabels_s3_server import S3Server

from softlabels.stores._fs import resolve
from softlabels.stores.lock import CacheLock

pytestmark = pytest.mark.slow

LEASE = "2"  # seconds: the killed writer's lease runs out quickly


def _notes(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("note:")]


def test_sigkilled_s3_dump_resumes_once_its_lease_expired(
    s3: S3Server, local_reference: Path, tmp_path: Path
) -> None:
    where = Where(tmp_path / "killed.slc", s3)
    args = dump_args(where.target, "single", "--lease-seconds", LEASE)
    cmd = [sys.executable, "-m", "softlabels", *args, "--json"]
    env = subprocess_env(**{SLEEP_ENV: "0.2"}, **s3.env)  # 10 batches: ~2 s of teacher work
    with subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        try:
            wait_for(lambda: where.exists("manifest/chunk-000001.json"), proc, "two commits")
        finally:
            proc.kill()  # SIGKILL in the middle of the dump
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    snapshot = committed_snapshot(where.local())
    doc = where.lock_doc()
    assert doc is not None and doc["pid"] == proc.pid and doc["lease"] == float(LEASE)

    # As if the writer's machine was preempted: nothing here can tell that it is gone. Its
    # lease is moved an hour on, so that a slow machine cannot let it lapse before the check.
    doc["host"] = "preempted-vm"
    doc["expires"] = time.time() + 3600
    s3.fs().pipe_file(f"{where.target}/{LOCK}", json.dumps(doc).encode())
    line = one_error_line(invoke(*args, "--json"))
    assert f"process {proc.pid} on preempted-vm" in line and "lease runs until" in line, line
    assert "--break-lock" in line

    doc["expires"] = time.time() + float(LEASE)  # now the lease runs out, untouched
    s3.fs().pipe_file(f"{where.target}/{LOCK}", json.dumps(doc).encode())
    time.sleep(max(0.0, doc["expires"] - time.time()) + 0.2)
    resumed = invoke(*args, "--json")  # the same command, no flag
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "resumed"
    notes = _notes(resumed.stderr)
    assert len(notes) == 1 and "lease expired" in notes[0] and str(proc.pid) in notes[0], notes
    assert compare_with_reference(where.local(), local_reference) == []
    assert lost(snapshot, where.local()) == []
    assert not where.exists(LOCK)


def test_lease_of_a_dead_process_of_this_host_is_taken_at_once(s3: S3Server, s3_copy: str) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    doc = {"pid": pid, "host": socket.gethostname(), "uuid": "x", "owner": "dump",
           "expires": time.time() + 3600, "lease": 3600.0}  # fmt: skip
    s3.fs().pipe_file(f"{s3_copy}/{LOCK}", json.dumps(doc).encode())
    result = invoke(*dump_args(s3_copy, "single"), "--json")
    assert result.exit_code == 0, result.stderr
    notes = _notes(result.stderr)
    assert len(notes) == 1 and f"process {pid}" in notes[0] and "no longer runs" in notes[0]
    assert not s3.fs().exists(f"{s3_copy}/{LOCK}")


HOLDER = """
import select, sys
from softlabels.errors import CacheLockedError
from softlabels.stores._fs import resolve
from softlabels.stores.lock import CacheLock
lock = CacheLock(resolve(sys.argv[1]), owner="holder", lease=float(sys.argv[2]))
lock.acquire()
print("held", flush=True)
while not select.select([sys.stdin], [], [], 0.05)[0]:
    try:
        lock.check()  # what a writer does before each commit
    except CacheLockedError as exc:
        print(f"lost: {exc}", flush=True)
        sys.exit(3)
lock.release()
print("released", flush=True)
"""


def test_live_holder_keeps_its_lease_and_loses_it_when_it_stalls(
    s3: S3Server, capfd: pytest.CaptureFixture[str]
) -> None:
    url = s3.url("contended/c.slc")
    lease = 1.0
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, str(lease)],
        env={**os.environ, **s3.env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "held"
            time.sleep(1.5 * lease)  # past one lease: the heartbeat renewed it
            # A second writer (another process) is refused with one line, exit 2.
            line = one_error_line(invoke(*dump_args(url, "single"), "--json"))
            assert f"process {holder.pid}" in line and "(holder)" in line, line
            assert "being written" in line and "lease runs until" in line, line
            line = one_error_line(invoke(*dump_args(url, "single"), "--break-lock", "--json"))
            assert "never breaks the lock of a live process" in line, line

            holder.send_signal(signal.SIGSTOP)  # the holder stalls: no renewals
            time.sleep(lease + 0.5)
            capfd.readouterr()
            with CacheLock(resolve(url), owner="taker", lease=30) as taker:
                notes = _notes(capfd.readouterr().err)
                assert len(notes) == 1 and "lease expired" in notes[0], notes
                assert f"process {holder.pid}" in notes[0]
                holder.send_signal(signal.SIGCONT)
                said = holder.stdout.readline()
                assert holder.wait(timeout=30) == 3, said
                assert said.startswith("lost:") and "taken over by" in said, said
                assert f"process {os.getpid()}" in said and "(taker)" in said, said
                taker.check()  # still ours
            assert not s3.fs().exists(f"{url}/{LOCK}")
        finally:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
            holder.communicate()


def test_s3_lock_writes_are_conditional(s3: S3Server) -> None:
    """Against the real endpoint: create-only fails on an existing object, and a replace
    of a version that changed since it was read fails, so two writers cannot both win."""
    from softlabels.stores._lease import _Conflict, _objects

    loc = resolve(s3.url("conditional/c.slc"))
    objects = _objects(loc.fs, loc.path(LOCK))
    assert objects.conditional
    first = objects.create(b"one")
    with pytest.raises(FileExistsError):
        objects.create(b"two")
    second = objects.replace(b"three", first)
    with pytest.raises(_Conflict):
        objects.replace(b"four", first)  # stale version: someone else renewed it
    assert objects.get() == (b"three", second)
    objects.delete(first)  # not ours any more: stays
    assert objects.get() is not None
    objects.delete(second)
    assert objects.get() is None
