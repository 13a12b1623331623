"""Who holds a cache lock, whether that process still runs, and the messages about it.

The part of the lock that every kind of storage shares (see :mod:`softlabels.stores.lock`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass

from softlabels.stores.errors import CacheLockedError

__all__ = ["Holder", "Way", "busy", "notice", "when", "who"]


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot; Linux), to tell a reused pid."""
    text = _read_text(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    try:
        return int(fields[19])  # field 22 of stat(5), after pid and (comm)
    except (IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file, read by whoever finds it taken."""

    pid: int
    host: str
    uuid: str
    owner: str = "writer"  # the command: dump, tune-tau, add-teacher ...
    since: float = 0.0
    boot: str | None = None  # /proc/sys/kernel/random/boot_id
    pidns: str | None = None  # the pid namespace
    start: int | None = None  # the process's start time (a reused pid has another)
    expires: float | None = None  # leases: wall-clock time the lease ends unless renewed
    lease: float | None = None

    @classmethod
    def me(cls, owner: str) -> Holder:
        pid = os.getpid()
        return cls(
            pid=pid,
            host=socket.gethostname(),
            uuid=uuid.uuid4().hex,
            owner=owner,
            since=time.time(),
            boot=_read_text("/proc/sys/kernel/random/boot_id"),
            pidns=_pid_namespace(),
            start=_start_time(pid),
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        """The holder named by a lock file; None when it names nobody (empty, damaged)."""
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
            return None
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        known.setdefault("host", "?")
        known.setdefault("uuid", "")
        try:
            return cls(**known)
        except TypeError:
            return None

    def describe(self) -> str:
        return f"process {self.pid} on {self.host} ({self.owner})"

    def _same_machine(self) -> bool:
        """Same host, and (where both recorded them) the same boot and pid namespace: only
        then does this process's view of pids say anything about the holder."""
        me = Holder.me(self.owner)
        if self.host != me.host:
            return False
        return all(
            mine is None or theirs is None or mine == theirs
            for mine, theirs in ((me.boot, self.boot), (me.pidns, self.pidns))
        )

    def alive_here(self) -> bool:
        """A live process of this machine (a pid now used by another process is not it)."""
        if not self._same_machine() or not _running(self.pid):
            return False
        if self.start is not None:
            now = _start_time(self.pid)
            return now is None or now == self.start
        return True

    def proven_dead(self) -> bool:
        """Shown to be gone: of this machine, and its pid no longer runs it."""
        return self._same_machine() and not self.alive_here()

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (now or time.time()) > self.expires


def who(holder: Holder | None) -> str:
    return holder.describe() if holder else "an unnamed process"


def notice(message: str) -> None:
    """One line on stderr: the lock of a gone writer was taken over."""
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


def busy(url: str, holder: Holder | None, break_stale: bool, extra: str = "") -> CacheLockedError:
    who = holder.describe() if holder else "another process (not named in the lock yet)"
    if holder is not None and holder.proven_dead() and not extra:
        extra = ", which is gone, but a process it started still holds the lock"
    what = "wait for it to finish"
    if holder is not None and holder.alive_here():
        if break_stale:
            what += "; --break-lock never breaks the lock of a live process"
    elif not break_stale:
        what += " (or, if that process is gone for good, rerun with --break-lock)"
    return CacheLockedError(f"{url} is being written by {who}{extra}; {what}")


def when(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


class Way:
    """How a lock is held on one kind of storage: the parts of :class:`CacheLock`."""

    def __init__(self, url: str, path: str, owner: str, break_stale: bool) -> None:
        self.url, self.path, self.owner, self.break_stale = url, path, owner, break_stale
        self.holder: Holder | None = None  # set once held

    def acquire(self) -> bool:
        """Take the lock (CacheLockedError when held); False: not possible on this storage."""
        raise NotImplementedError

    def check(self) -> None:
        pass

    def release(self) -> None:
        raise NotImplementedError

    def lost(self, why: str) -> CacheLockedError:
        return CacheLockedError(
            f"{self.url}: this writer lost the cache lock ({why}); what it committed is "
            "kept; the other writer finishes the cache (rerun the same command once it is done)"
        )
