"""One writer per cache, and a writer that dies never blocks the rerun.

The lock is the file (or object) ``.softlabels.lock`` at the cache root, naming its holder
(:class:`Holder`: pid, host, a uuid, what it runs). How it is held depends on the storage:

* **Local and network folders**: an OS lock (``fcntl.flock``) on the lock file, kept open
  for the writer's lifetime. The kernel releases it when the process ends however it ends
  (SIGKILL, OOM, preemption), so the rerun of the same command simply takes it: no flag.
  A releasing holder removes the file before closing it, so a taker checks that the file
  it locked is still the one at the path.
* **Folders where the OS cannot lock** (``flock`` fails with ENOLCK, EOPNOTSUPP ...): the
  file is created exclusively, whole (written beside it, then hard-linked into place), and
  a holder *proven dead* (same host, boot and pid namespace, and its pid is gone or now
  another process) is taken over with a one-line notice on stderr.
* **Object stores** (every fsspec protocol but the local one): a *lease*. The lock object
  carries an expiry, renewed by a heartbeat thread every ``lease/4`` s while the writer
  runs; once expired (or its holder proven dead) another writer takes it over, with a
  notice. The default lease is 120 s (``SOFTLABELS_LEASE_SECONDS``, ``--lease-seconds``).
  Writes are conditional where the store offers it (S3: ``If-None-Match: *`` to create,
  ``If-Match: <etag>`` to renew or take over, so of two racing writers exactly one wins);
  elsewhere the lock is written, then read back and its uuid compared (best effort: two
  writers racing within one round trip on a store without conditional writes may both
  believe they won). Expiries are wall-clock times: the hosts' clocks must agree to well
  within the lease. A writer that finds its lease taken (it stalled past its expiry) stops
  at its next commit (:meth:`CacheLock.check`); what it committed before stays.

``--break-lock`` (``break_stale``) takes over a lock whose holder may still be alive but
cannot be shown to be (another host, an unexpired lease); it never breaks the lock of a
live process of this host.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from types import TracebackType

from softlabels.stores._fs import Location
from softlabels.stores._holder import Holder, Way, busy
from softlabels.stores._lease import (
    DEFAULT_LEASE_SECONDS,
    LEASE_ENV,
    Lease,
    lease_seconds,
    using_lease,
)
from softlabels.stores._local_lock import LOCK_NAME, FlockFile, LinkFile

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "LEASE_ENV",
    "LOCK_KEY",
    "CacheLock",
    "Holder",
    "lease_seconds",
    "read_lock",
    "using_lease",
]

LOCK_KEY = LOCK_NAME
# lock paths this process holds, and as whom (flock may be per process on NFS)
_held_here: dict[str, Holder] = {}
_held_guard = threading.Lock()


def read_lock(loc: Location) -> dict[str, object] | None:
    """The lock document of a cache as a dict (None when there is no lock file)."""
    try:
        data = loc.read(LOCK_KEY)
    except (FileNotFoundError, OSError):
        return None
    holder = Holder.parse(data)
    return asdict(holder) if holder else {"pid": -1, "host": "?", "unreadable": True}


class CacheLock:
    """Context manager holding the write lock of one cache (see the module docstring)."""

    def __init__(
        self,
        loc: Location,
        *,
        break_stale: bool = False,
        owner: str = "dump",
        lease: float | None = None,
    ) -> None:
        self.loc = loc
        self.break_stale = break_stale
        self.owner = owner
        self.lease = lease
        self.held = False
        self.holder: Holder | None = None
        self._way: Way | None = None

    @property
    def path(self) -> str:
        return self.loc.path(LOCK_KEY)

    def acquire(self) -> None:
        if self.held:
            return
        with _held_guard:
            if self.path in _held_here:
                raise busy(self.loc.url, _held_here[self.path], self.break_stale)
        url, path, owner, brk = self.loc.url, self.path, self.owner, self.break_stale
        if self.loc.is_local:
            way: Way = FlockFile(url, path, owner, brk)
            if not way.acquire():
                way = LinkFile(url, path, owner, brk)
                way.acquire()
        else:
            way = Lease(url, self.loc.fs, path, owner, brk, self.lease or lease_seconds())
            way.acquire()
        self._way, self.holder = way, way.holder
        self.held = True
        with _held_guard:
            _held_here[self.path] = way.holder or Holder.me(owner)

    def check(self) -> None:
        """Raise CacheLockedError when this writer no longer holds the lock (a lease taken
        over after it stalled, a lock broken from elsewhere): call before each commit."""
        if self.held and self._way is not None:
            self._way.check()

    def release(self) -> None:
        if not self.held:
            return
        try:
            if self._way is not None:
                self._way.release()
        finally:
            self.held = False
            self._way = None
            with _held_guard:
                _held_here.pop(self.path, None)

    def __enter__(self) -> CacheLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
