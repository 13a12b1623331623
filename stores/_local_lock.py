"""Cache locks in local and network folders: an OS lock, or an exclusive lock file.

:class:`FlockFile` holds ``fcntl.flock`` on ``.softlabels.lock``, open for the writer's
lifetime: the kernel releases it when the process dies, however it dies. Where the
filesystem cannot flock, :class:`LinkFile` creates the file exclusively and whole, and takes
over a holder proven dead (see :mod:`softlabels.stores.lock`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid

from softlabels.stores._holder import Holder, Way, busy, notice, who
from softlabels.stores.errors import CacheLockedError

__all__ = ["FlockFile", "LinkFile"]

LOCK_NAME = ".softlabels.lock"  # stores.lock.LOCK_KEY: the lock file at the cache root
# flock errors that mean "this filesystem cannot lock", not "someone holds it"
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}
# an unreadable lock file older than this is debris (no writer leaves one for longer)
_DEBRIS_SECONDS = 5.0


class FlockFile(Way):
    """``fcntl.flock`` on the lock file, held open for the writer's lifetime."""

    def acquire(self) -> bool:
        """True when held; False when this filesystem cannot flock (use :class:`LinkFile`)."""
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        broke = False
        for _ in range(50):
            fd, created = _open_lock_file(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = self._named_holder()
                if broke or not self._may_break(holder):
                    raise busy(self.url, holder, self.break_stale) from None
                notice(f"--break-lock: {self.url} was locked by {who(holder)}; lock taken over")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)  # the old holder keeps a lock on a file no one sees
                broke = True
                continue
            except OSError as exc:
                os.close(fd)
                if exc.errno in _NO_FLOCK:
                    if created:  # leave no empty file for the lock file way to trip on
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(self.path)
                    return False
                raise
            if not self._still_at_path(fd):  # its holder removed it while releasing
                os.close(fd)
                continue
            me = Holder.me(self.owner)
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.to_json(), 0)
            os.fsync(fd)
            self.fd, self.holder = fd, me
            return True
        raise CacheLockedError(f"could not take the lock of {self.url} (it keeps changing hands)")

    def _still_at_path(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _named_holder(self) -> Holder | None:
        """The holder named in the locked file (a new holder names itself right after
        locking: give it a moment)."""
        for _ in range(25):
            data = _local_bytes(self.path)
            holder = Holder.parse(data) if data else None
            if holder is not None and not holder.proven_dead():
                return holder
            time.sleep(0.02)
        return holder

    def _may_break(self, holder: Holder | None) -> bool:
        return self.break_stale and (holder is None or not holder.alive_here())

    def check(self) -> None:
        if not self._still_at_path(self.fd):
            raise self.lost("its lock file was removed or replaced, e.g. by --break-lock")

    def release(self) -> None:
        try:
            if self._still_at_path(self.fd):
                os.unlink(self.path)  # before closing: a taker then sees it is gone
        finally:
            os.close(self.fd)


def _open_lock_file(path: str) -> tuple[int, bool]:
    """Open (creating it when missing) the lock file; whether this call created it."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
    except FileExistsError:
        try:
            return os.open(path, flags), False
        except FileNotFoundError:  # removed meanwhile (its holder released it)
            return os.open(path, flags | os.O_CREAT, 0o644), True


def _local_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class LinkFile(Way):
    """An exclusively created lock file, for filesystems without flock."""

    def acquire(self) -> bool:
        me = Holder.me(self.owner)
        payload = me.to_json()
        for _ in range(5):
            if _create_whole(self.path, payload):
                self.me = self.holder = me
                return True
            data = _local_bytes(self.path)
            if data is None:  # removed meanwhile: try again
                continue
            holder = Holder.parse(data)
            why = self._why_take(holder)
            if why is None:
                raise busy(self.url, holder, self.break_stale)
            if self._take(data):
                notice(f"{self.url}: took over the lock of {who(holder)}, {why}")
        raise CacheLockedError(f"could not take the lock of {self.url} (it keeps changing hands)")

    def _why_take(self, holder: Holder | None) -> str | None:
        """Why the lock may be taken (None: it may not)."""
        if holder is None:
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                return "which is gone"
            if age > _DEBRIS_SECONDS:
                return "an unreadable lock file that no writer is creating"
            return "an unreadable lock file (--break-lock)" if self.break_stale else None
        if holder.proven_dead():
            return "which no longer runs"
        if holder.alive_here():
            return None
        return "(--break-lock)" if self.break_stale else None

    def _take(self, seen: bytes) -> bool:
        """Move the lock file seen aside, unless it changed since it was read."""
        folder, name = os.path.split(self.path)
        aside = os.path.join(folder, f"{name}.{uuid.uuid4().hex}.tmp")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            if _local_bytes(aside) != seen:  # another writer took it first: put it back
                with contextlib.suppress(OSError):
                    os.link(aside, self.path)
                return False
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)

    def check(self) -> None:
        data = _local_bytes(self.path)
        holder = Holder.parse(data) if data else None
        if holder is None or holder.uuid != self.me.uuid:
            raise self.lost(f"the lock file now names {who(holder)}")

    def release(self) -> None:
        data = _local_bytes(self.path)
        holder = Holder.parse(data) if data else None
        if holder is not None and holder.uuid == self.me.uuid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _create_whole(path: str, payload: bytes) -> bool:
    """Create ``path`` holding ``payload``, only if it does not exist; never half-written
    (a temp file hard-linked into place; O_EXCL where the filesystem has no hard links)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f"{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
