"""One writer per cache: a lock file with the owner's pid and host.

On a local filesystem the lock is created with O_EXCL, so two writers cannot both get it.
A lock left by a process that no longer runs on this host is *stale*: it is recognised and
reported, and cleared only when the user asks (``--break-lock``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from types import TracebackType

from softlabels.stores._fs import Location
from softlabels.stores.errors import CacheLockedError

__all__ = ["CacheLock", "read_lock"]

LOCK_KEY = ".softlabels.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(loc: Location) -> dict[str, object] | None:
    if not loc.exists(LOCK_KEY):
        return None
    try:
        doc = json.loads(loc.read(LOCK_KEY))
        if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
            raise ValueError("no pid")
        return dict(doc)
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {"pid": -1, "host": "?", "unreadable": True}


def is_stale(info: dict[str, object]) -> bool:
    return info.get("host") == socket.gethostname() and not _alive(int(info.get("pid", -1)))  # type: ignore[call-overload]


class CacheLock:
    """Context manager holding the write lock of one cache."""

    def __init__(self, loc: Location, *, break_stale: bool = False, owner: str = "dump") -> None:
        self.loc = loc
        self.break_stale = break_stale
        self.owner = owner
        self.held = False

    def acquire(self) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "owner": self.owner,
        }
        payload = json.dumps(info).encode()
        for _ in range(2):
            if self._try_create(payload):
                self.held = True
                return
            held = read_lock(self.loc) or {}
            if held.get("unreadable"):
                # A writer died between creating the lock and writing its pid into it.
                if not self.break_stale:
                    raise CacheLockedError(
                        f"{self.loc.url} has an unreadable lock file (a writer died while taking it?); "
                        "if no other dump is running, rerun with --break-lock to clear it"
                    )
                self.loc.remove(LOCK_KEY)
                continue
            if is_stale(held):
                if not self.break_stale:
                    raise CacheLockedError(
                        f"{self.loc.url} has a stale lock from process {held.get('pid')} on "
                        f"{held.get('host')}, which no longer runs; rerun with --break-lock to clear it"
                    )
                self.loc.remove(LOCK_KEY)
                continue
            what = "wait for it to finish"
            if not self.break_stale:
                what += " (or, if that process is gone for good, rerun with --break-lock)"
            else:
                what += "; --break-lock never breaks the lock of a live process"
            raise CacheLockedError(
                f"{self.loc.url} is being written by process {held.get('pid')} on "
                f"{held.get('host')} ({held.get('owner', 'writer')}); {what}"
            )
        raise CacheLockedError(f"could not take the lock of {self.loc.url}")

    def _try_create(self, payload: bytes) -> bool:
        path = self.loc.path(LOCK_KEY)
        if self.loc.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            return True
        # Object stores have no O_EXCL: check-then-put (documented as best effort).
        if self.loc.exists(LOCK_KEY):
            return False
        self.loc.fs.pipe_file(path, payload)
        return True

    def release(self) -> None:
        if self.held:
            self.loc.remove(LOCK_KEY)
            self.held = False

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
