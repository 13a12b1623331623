"""Cache locks on object stores: a lease, renewed by a heartbeat thread.

The lock object names its holder and an expiry (wall-clock), renewed every ``lease/4`` s
while the writer runs; an expired lease, or one whose holder is proven dead, is taken over.
Writes are conditional where the store offers it (S3's ``If-None-Match``/``If-Match``), so of
two racing writers exactly one wins; elsewhere a write is read back and compared (best
effort). See :mod:`softlabels.stores.lock`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from softlabels.stores._holder import Holder, Way, busy, notice, when, who
from softlabels.stores.errors import CacheLockedError, UsageError

__all__ = ["DEFAULT_LEASE_SECONDS", "LEASE_ENV", "Lease", "lease_seconds", "using_lease"]

LEASE_ENV = "SOFTLABELS_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 120.0
_lease_given: list[float] = []  # --lease-seconds of the running command (see using_lease)


def lease_seconds() -> float:
    """The lease of object-store locks: ``--lease-seconds`` of the running command, else
    ``$SOFTLABELS_LEASE_SECONDS``, else 120 s."""
    if _lease_given:
        return _lease_given[-1]
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    return _check_lease(text, f"${LEASE_ENV}")


def _check_lease(value: object, where: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"Expected {where} a number of seconds, got {value!r}") from None
    if not (seconds > 0 and seconds < float("inf")):
        raise UsageError(f"Expected {where} > 0 seconds, got {value!r}")
    return seconds


@contextlib.contextmanager
def using_lease(seconds: float | None) -> Iterator[None]:
    """Use a lease of ``seconds`` for object-store locks taken in the block (None: keep)."""
    if seconds is None:
        yield
        return
    _lease_given.append(_check_lease(seconds, "--lease-seconds"))
    try:
        yield
    finally:
        _lease_given.pop()


class _Conflict(Exception):
    """A conditional write found the object changed."""


class _Objects:
    """Reads and writes of one lock object; conditional where the store allows it."""

    conditional = False

    def __init__(self, fs: Any, path: str) -> None:
        self.fs, self.path = fs, path

    def get(self) -> tuple[bytes, Any] | None:
        """The object's bytes and a token of this version (None: no object)."""
        self.fs.invalidate_cache(self.path)
        try:
            data = bytes(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        return data, data

    def create(self, data: bytes) -> Any:
        """Write a new object; FileExistsError when there is one."""
        self.fs.invalidate_cache(self.path)
        self.fs.pipe_file(self.path, data, mode="create")
        return data

    def replace(self, data: bytes, token: Any) -> Any:
        """Overwrite the version ``token``; _Conflict when the object is another now."""
        now = self.get()
        if now is None or now[1] != token:
            raise _Conflict
        self.fs.pipe_file(self.path, data)
        return data

    def delete(self, token: Any) -> None:
        now = self.get()
        if now is not None and now[1] == token:
            self.fs.rm(self.path)


class _S3Objects(_Objects):
    """S3 conditional requests: ``If-None-Match: *`` creates, ``If-Match: ETag`` replaces."""

    conditional = True

    def _bucket_key(self) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(self.path)
        return bucket, key

    def get(self) -> tuple[bytes, Any] | None:
        from fsspec.asyn import sync

        bucket, key = self._bucket_key()

        async def fetch() -> tuple[bytes, str]:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            body = resp["Body"]
            try:
                data = await body.read()
            finally:
                body.close()
            return bytes(data), str(resp["ETag"])

        try:
            return sync(self.fs.loop, fetch)
        except FileNotFoundError:
            return None

    def create(self, data: bytes) -> Any:
        resp = self.fs.pipe_file(self.path, data, mode="create")
        self.fs.invalidate_cache(self.path)
        return str(resp["ETag"])

    def replace(self, data: bytes, token: Any) -> Any:
        try:
            resp = self.fs.pipe_file(self.path, data, IfMatch=token)
        except (FileNotFoundError, FileExistsError) as exc:
            raise _Conflict from exc
        except OSError as exc:
            if exc.errno == errno.EINVAL or "condition" in str(exc).lower():
                raise _Conflict from exc
            raise
        finally:
            self.fs.invalidate_cache(self.path)
        return str(resp["ETag"])

    def delete(self, token: Any) -> None:
        bucket, key = self._bucket_key()
        try:
            self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=token)
        except FileNotFoundError:
            pass
        except OSError:  # changed since (taken over), or no conditional delete here
            now = self.get()
            if now is not None and now[1] == token:
                self.fs.rm(self.path)
        finally:
            self.fs.invalidate_cache(self.path)


def _objects(fs: Any, path: str) -> _Objects:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if {"s3", "s3a"} & set(protocols) and hasattr(fs, "_call_s3"):
        return _S3Objects(fs, path)
    return _Objects(fs, path)


class Lease(Way):
    """A lock object with an expiry, renewed by a heartbeat thread."""

    def __init__(
        self, url: str, fs: Any, path: str, owner: str, break_stale: bool, seconds: float
    ) -> None:
        super().__init__(url, path, owner, break_stale)
        self.seconds = seconds
        self.objects = _objects(fs, path)
        self.guard = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.lost_why: str | None = None

    def _mine(self) -> Holder:
        now = time.time()
        return Holder(
            **{
                **asdict(self.me),
                "expires": now + self.seconds,
                "lease": self.seconds,
            }
        )

    def acquire(self) -> bool:
        self.me = Holder.me(self.owner)
        for _ in range(5):
            mine = self._mine()
            try:
                token = self.objects.create(mine.to_json())
            except FileExistsError:
                seen = self.objects.get()
                if seen is None:
                    continue
                holder = Holder.parse(seen[0])
                why = self._why_take(holder)
                if why is None:
                    raise self._refusal(holder) from None
                try:
                    token = self.objects.replace(mine.to_json(), seen[1])
                except _Conflict:
                    continue  # renewed or taken meanwhile: look again
                notice(f"{self.url}: took over the lease of {who(holder)}, {why}")
            if not self._confirm(mine):
                continue
            self.token, self.current = token, mine
            self.holder = mine
            self.thread = threading.Thread(target=self._beat, name="softlabels-lease", daemon=True)
            self.thread.start()
            return True
        raise CacheLockedError(f"could not take the lock of {self.url} (it keeps changing hands)")

    def _confirm(self, mine: Holder) -> bool:
        """Read the lock back: ours? (catches stores that ignore conditional requests)"""
        seen = self.objects.get()
        holder = Holder.parse(seen[0]) if seen else None
        return holder is not None and holder.uuid == mine.uuid

    def _why_take(self, holder: Holder | None) -> str | None:
        if holder is None:
            return "an unreadable lock object (no writer leaves one)"
        if holder.expired():
            assert holder.expires is not None
            return f"whose lease expired {time.time() - holder.expires:.1f} s ago"
        if holder.proven_dead():
            return "which no longer runs"
        if self.break_stale and not holder.alive_here():
            return "(--break-lock)"
        return None

    def _refusal(self, holder: Holder | None) -> CacheLockedError:
        extra = ""
        if holder is not None and holder.expires is not None:
            left = max(0.0, holder.expires - time.time())
            extra = (
                f", whose lease runs until {when(holder.expires)} ({left:.0f} s; renewed "
                "while it runs)"
            )
        return busy(self.url, holder, self.break_stale, extra)

    # -- renewal
    def _renew(self) -> None:
        """Extend the lease (a conditional write over our own last version)."""
        with self.guard:
            if self.lost_why is not None:
                return
            mine = self._mine()
            try:
                token = self.objects.replace(mine.to_json(), self.token)
            except _Conflict:
                seen = self.objects.get()
                holder = Holder.parse(seen[0]) if seen else None
                self.lost_why = f"its lease was taken over by {who(holder)}"
                return
            self.token, self.current = token, mine

    def _beat(self) -> None:
        while not self.stop.wait(self.seconds / 4):
            with contextlib.suppress(Exception):  # a transient store error: try again next beat
                self._renew()
            if self.lost_why is not None:
                return

    def check(self) -> None:
        if self.lost_why is None and time.time() > self.current.expires - self.seconds / 2:
            with contextlib.suppress(Exception):
                self._renew()  # late (the process stalled?): renew now or find it lost
            if self.lost_why is None and time.time() > (self.current.expires or 0.0):
                self.lost_why = "its lease expired and could not be renewed"
        if self.lost_why is not None:
            raise self.lost(self.lost_why)

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=self.seconds)
        with self.guard, contextlib.suppress(OSError):  # unreachable store: it expires
            if self.lost_why is None:
                self.objects.delete(self.token)
