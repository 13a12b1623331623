"""The cache lock: an OS lock that dies with its holder, a lock file where the OS cannot lock,
a lease on object stores (here ``memory://``; ``tests/s3`` runs it against an S3 server)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from softlabels.errors import CacheLockedError, UsageError
from softlabels.stores import _lease as lease_mod
from softlabels.stores._fs import resolve
from softlabels.stores._holder import Holder
from softlabels.stores.lock import LOCK_KEY, CacheLock, lease_seconds, using_lease

HOLD = (
    "import sys\n"
    "from softlabels.stores._fs import resolve\n"
    "from softlabels.stores.lock import CacheLock\n"
    "lock = CacheLock(resolve(sys.argv[1]), owner='holder')\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def _holder_process(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _doc(**fields: object) -> str:
    me = Holder.me("dump")
    doc = {"pid": me.pid, "host": me.host, "uuid": uuid.uuid4().hex, "owner": "dump"}
    doc.update({"boot": me.boot, "pidns": me.pidns, "start": me.start})
    doc.update(fields)
    return json.dumps(doc)


# --------------------------------------------------------------------------- flock


def test_lock_of_a_killed_holder_is_taken_at_once(tmp_path: Path) -> None:
    """SIGKILL: the kernel drops the flock; the file it left names the dead holder and
    blocks nothing (no flag, no notice)."""
    folder = tmp_path / "c.slc"
    with _holder_process(folder) as proc:
        try:
            with pytest.raises(CacheLockedError, match=f"process {proc.pid} on .* \\(holder\\)"):
                CacheLock(resolve(str(folder))).acquire()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
    assert json.loads((folder / LOCK_KEY).read_text())["pid"] == proc.pid
    with CacheLock(resolve(str(folder)), owner="next") as lock:
        doc = json.loads((folder / LOCK_KEY).read_text())
        assert doc["pid"] == os.getpid() and doc["owner"] == "next"
        assert doc["uuid"] == lock.holder.uuid
    assert not (folder / LOCK_KEY).exists()


def test_a_lock_file_replaced_under_its_holder_is_noticed(tmp_path: Path) -> None:
    folder = tmp_path / "c.slc"
    lock = CacheLock(resolve(str(folder)))
    lock.acquire()
    lock.check()
    (folder / LOCK_KEY).unlink()  # what --break-lock from another host does
    (folder / LOCK_KEY).write_text(_doc(host="elsewhere"))
    with pytest.raises(CacheLockedError, match="lost the cache lock"):
        lock.check()
    lock.release()
    assert (folder / LOCK_KEY).exists()  # the other writer's lock is not ours to remove


def test_one_process_cannot_lock_twice(tmp_path: Path) -> None:
    with (
        CacheLock(resolve(str(tmp_path / "c.slc"))),
        pytest.raises(CacheLockedError, match=f"process {os.getpid()}"),
    ):
        CacheLock(resolve(str(tmp_path / "c.slc")), break_stale=True).acquire()


# --------------------------------------------------------------------------- no flock


@pytest.fixture
def no_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem where flock fails as it does on some NFS mounts (ENOLCK)."""
    import fcntl

    def flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", flock)


def test_without_flock_the_file_is_created_whole_and_removed(tmp_path: Path, no_flock) -> None:
    folder = tmp_path / "c.slc"
    with CacheLock(resolve(str(folder)), owner="dump") as lock:
        doc = json.loads((folder / LOCK_KEY).read_text())
        assert doc["pid"] == os.getpid() and doc["uuid"] == lock.holder.uuid
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_KEY]  # no temp file left
    assert not (folder / LOCK_KEY).exists()


@pytest.mark.parametrize(
    "how",
    ["dead pid", "reused pid", "old unreadable file"],
)
def test_without_flock_a_holder_proven_dead_is_taken_over(
    tmp_path: Path, no_flock, capfd: pytest.CaptureFixture[str], how: str
) -> None:
    folder = tmp_path / "c.slc"
    folder.mkdir()
    lock_file = folder / LOCK_KEY
    if how == "dead pid":
        lock_file.write_text(_doc(pid=_dead_pid(), start=None))
    elif how == "reused pid":  # our pid, but another start time: not the process that locked
        lock_file.write_text(_doc(start=(Holder.me("x").start or 0) + 1))
    else:
        lock_file.write_bytes(b"")  # a writer of another version died while creating it
        os.utime(lock_file, (time.time() - 60, time.time() - 60))
    with CacheLock(resolve(str(folder))):
        pass
    notes = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert len(notes) == 1 and notes[0].startswith("note:") and "took over" in notes[0], notes
    assert not lock_file.exists()


def test_without_flock_a_live_or_remote_holder_keeps_the_lock(tmp_path: Path, no_flock) -> None:
    folder = tmp_path / "c.slc"
    folder.mkdir()
    lock_file = folder / LOCK_KEY
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE) as live:  # fmt: skip
        lock_file.write_text(_doc(pid=live.pid, start=None))
        for brk in (False, True):
            with pytest.raises(CacheLockedError, match=f"process {live.pid}") as exc:
                CacheLock(resolve(str(folder)), break_stale=brk).acquire()
        assert "never breaks the lock of a live process" in str(exc.value)
        live.stdin.close()  # type: ignore[union-attr]
    lock_file.write_text(_doc(pid=12345, host="elsewhere"))
    with pytest.raises(CacheLockedError, match=r"elsewhere.*--break-lock"):
        CacheLock(resolve(str(folder))).acquire()
    lock_file.write_bytes(b"{")  # fresh and unreadable: maybe being created right now
    with pytest.raises(CacheLockedError, match="--break-lock"):
        CacheLock(resolve(str(folder))).acquire()
    with CacheLock(resolve(str(folder)), break_stale=True):
        pass


def test_without_flock_racing_processes_get_one_lock(tmp_path: Path) -> None:
    """Hard links are exclusive: of three processes racing, exactly one gets the lock."""
    code = (
        "import errno, fcntl, os, sys, time\n"
        "def flock(fd, op): raise OSError(errno.ENOLCK, 'no locks')\n"
        "fcntl.flock = flock\n"
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
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "race.slc"), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["got it", "refused", "refused"], outcomes


# --------------------------------------------------------------------------- leases


def _lease(url: str, seconds: float, owner: str = "dump", brk: bool = False) -> lease_mod.Lease:
    loc = resolve(url)
    return lease_mod.Lease(loc.url, loc.fs, loc.path(LOCK_KEY), owner, brk, seconds)


def test_lease_is_renewed_while_held_and_taken_once_expired(
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = f"memory://lease-{uuid.uuid4().hex}/c.slc"
    first = _lease(url, 0.4, owner="first")
    first.acquire()
    try:
        expires = first.current.expires
        time.sleep(0.6)  # longer than the lease: the heartbeat renewed it
        assert first.current.expires > expires
        with pytest.raises(CacheLockedError, match="lease runs until") as exc:
            _lease(url, 0.4, owner="second", brk=True).acquire()
        assert "never breaks the lock of a live process" in str(exc.value)
        first.stop.set()  # the holder stalls: no more renewals
        first.thread.join()
        time.sleep(0.5)
        second = _lease(url, 0.4, owner="second")
        second.acquire()
        notes = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
        assert len(notes) == 1 and "lease expired" in notes[0] and "(first)" in notes[0], notes
        with pytest.raises(CacheLockedError, match=r"lost the cache lock .*taken over by"):
            first.check()  # the stalled writer finds out at its next commit
        first.release()  # does not remove the new holder's lease
        second.check()
        second.release()
        assert not resolve(url).exists(LOCK_KEY)
    finally:
        first.stop.set()


def test_lease_of_a_dead_process_of_this_host_is_taken_at_once() -> None:
    url = f"memory://lease-{uuid.uuid4().hex}/c.slc"
    loc = resolve(url)
    loc.fs.pipe_file(loc.path(LOCK_KEY), _doc(pid=_dead_pid(), expires=time.time() + 3600).encode())
    with CacheLock(loc):
        pass
    loc.fs.pipe_file(
        loc.path(LOCK_KEY), _doc(pid=1, host="elsewhere", expires=time.time() + 3600).encode()
    )
    with pytest.raises(CacheLockedError, match=r"elsewhere.*lease runs until.*--break-lock"):
        CacheLock(loc).acquire()
    with CacheLock(loc, break_stale=True):
        pass


def test_lease_seconds_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lease_mod.LEASE_ENV, raising=False)
    assert lease_seconds() == 120.0
    monkeypatch.setenv(lease_mod.LEASE_ENV, "7.5")
    assert lease_seconds() == 7.5
    with using_lease(2):
        assert lease_seconds() == 2.0
    for bad in ("soon", "0", "-1", "inf"):
        monkeypatch.setenv(lease_mod.LEASE_ENV, bad)
        with pytest.raises(UsageError, match="SOFTLABELS_LEASE_SECONDS"):
            lease_seconds()
    with pytest.raises(UsageError, match="--lease-seconds"), using_lease(0):
        pass


def test_holder_parse_tolerates_old_and_foreign_documents() -> None:
    old = Holder.parse(json.dumps({"pid": 3, "host": socket.gethostname()}).encode())
    assert old is not None and old.uuid == "" and old.expires is None
    assert Holder.parse(b"") is None and Holder.parse(b"[1]") is None
    assert Holder.parse(b'{"pid": "3"}') is None


def test_a_writer_that_lost_its_lease_commits_nothing_more() -> None:
    """Another writer took the lease (this one stalled): the next commit is refused."""
    from test_cache_store import SPECS, TABLES, _chunk, _meta

    from softlabels.stores.cache import CacheWriter

    url = f"memory://lease-{uuid.uuid4().hex}/c.slc"
    with using_lease(0.4):
        writer = CacheWriter.open(url, meta=_meta(), specs=SPECS, tables=TABLES)
    try:
        writer.write_chunk(0, _chunk(0))
        loc = resolve(url)
        taker = _doc(pid=1, host="elsewhere", expires=time.time() + 60)
        loc.fs.pipe_file(loc.path(LOCK_KEY), taker.encode())
        time.sleep(0.3)  # a heartbeat finds the lease taken
        with pytest.raises(CacheLockedError, match="lost the cache lock"):
            writer.write_chunk(1, _chunk(1))
        assert writer.pending_chunks() == [1, 2]
    finally:
        writer.close()
    assert json.loads(resolve(url).read(LOCK_KEY))["host"] == "elsewhere"  # left to its holder
