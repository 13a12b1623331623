"""Byte-level access to a cache location: a local folder or any fsspec URL.

Everything above this module speaks in keys relative to the cache root ("labels/c/0",
"manifest/chunk-000000.json"); this module maps them to a filesystem and gives the few
operations the cache needs, with atomic writes where the backend allows them.

Filesystems are opened through fsspec, so its own configuration applies (``FSSPEC_<PROTOCOL>``
and ``FSSPEC_<PROTOCOL>_<KWARG>`` environment variables, files in ``FSSPEC_CONFIG_DIR``, e.g.
``FSSPEC_S3_ENDPOINT_URL``). On top of it, options given for a protocol with
:func:`storage_options` (the CLI's ``--storage-options JSON``) apply to every URL of that
protocol opened while the block runs; options passed to :func:`resolve` win over both.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec

from softlabels.stores.atomic import write_atomic
from softlabels.stores.errors import UsageError

__all__ = ["Location", "parse_storage_options", "resolve", "storage_options"]

# protocol -> options given for it by the running command (see storage_options)
_GIVEN: dict[str, dict[str, Any]] = {}
_GIVEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class Location:
    """A cache root on some filesystem."""

    url: str  # what the user gave (normalised): a local absolute path or a URL
    fs: Any  # fsspec.AbstractFileSystem
    root: str  # root path inside fs, no trailing slash
    # the options the filesystem was opened with beyond fsspec's configuration (zarr's
    # store is opened with them too)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def path(self, key: str) -> str:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"Expected a key inside the cache, got {key!r}")
        return posixpath.join(self.root, key) if key else self.root

    def exists(self, key: str = "") -> bool:
        return bool(self.fs.exists(self._fresh(self.path(key))))

    def _fresh(self, path: str) -> str:
        """``path``, with what the filesystem remembers of its folder listing forgotten
        (other processes write the same cache: a cached listing would hide their files)."""
        if not self.is_local:
            self.fs.invalidate_cache(path)
            self.fs.invalidate_cache(posixpath.dirname(path))
        return path

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._fresh(self.path(key))))

    def write_atomic(self, key: str, data: bytes) -> None:
        """Write all of ``data`` under ``key`` or nothing (temp file + rename where possible)."""
        path = self.path(key)
        if self.is_local:
            write_atomic(path, data)
        else:
            # Object stores write a whole object per put: no partial object is ever visible.
            self.fs.pipe_file(path, data)

    def write(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` (not atomic: callers commit through the manifest)."""
        path = self.path(key)
        if self.is_local:
            try:
                with open(path, "wb") as f:
                    f.write(data)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
        else:
            self.fs.pipe_file(path, data)

    def remove(self, key: str) -> None:
        path = self._fresh(self.path(key))
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list(self, key: str) -> list[str]:
        """Names (not paths) directly under ``key``; empty when it does not exist."""
        path = self._fresh(self.path(key))
        if not self.fs.exists(path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))

    def du(self, key: str = "") -> int:
        """Bytes of the files under ``key`` (or of the file ``key``), as fsspec's ``du``."""
        path = self._fresh(self.path(key))
        if self.is_local:
            return _local_du(path)
        if not self.fs.exists(path):
            return 0
        return int(self.fs.du(path, total=True))

    def zarr_store(self, *, read_only: bool) -> Any:
        """A zarr v3 store over this location."""
        from zarr.storage import FsspecStore, LocalStore

        if self.is_local:
            return LocalStore(self.root, read_only=read_only)
        return FsspecStore.from_url(
            self.url, storage_options=dict(self.options) or None, read_only=read_only
        )


def _local_du(path: str) -> int:
    """fsspec's local ``du`` (sizes of the files, links not followed) without its
    per-file ``info`` calls: one ``os.walk``."""
    if not os.path.lexists(path):
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return os.lstat(path).st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def parse_storage_options(text: str | None, flag: str = "--storage-options") -> dict[str, Any]:
    """The options of ``--storage-options JSON``: a JSON object (empty when not given)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"Expected {flag} a JSON object such as "
            '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\', '
            f"got {text!r} ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"Expected {flag} a JSON object, got {type(value).__name__} {text!r}")
    return value


def _protocol_of(url: str) -> str | None:
    text = os.fspath(url)
    if "://" not in text or text.startswith("file://"):
        return None
    return text.split("://", 1)[0].split("::")[-1]


@contextlib.contextmanager
def storage_options(url: str, options: Mapping[str, Any] | None) -> Iterator[None]:
    """Open every filesystem of ``url``'s protocol with ``options`` while the block runs
    (on top of fsspec's configuration); no-op for local paths or empty options."""
    proto = _protocol_of(url)
    if proto is None or not options:
        yield
        return
    with _GIVEN_LOCK:
        before = _GIVEN.get(proto)
        _GIVEN[proto] = {**(before or {}), **options}
    try:
        yield
    finally:
        with _GIVEN_LOCK:
            if before is None:
                _GIVEN.pop(proto, None)
            else:
                _GIVEN[proto] = before


def resolve(
    path_or_url: str | os.PathLike[str], options: Mapping[str, Any] | None = None
) -> Location:
    """Turn a path or URL into a :class:`Location`; ``options`` go to the fsspec filesystem
    (over those given with :func:`storage_options` and fsspec's own configuration)."""
    text = os.fspath(path_or_url)
    proto = _protocol_of(text)
    if proto is not None:
        with _GIVEN_LOCK:
            given = {**_GIVEN.get(proto, {}), **(options or {})}
        fs, root = fsspec.core.url_to_fs(text, **given)
        root = root.rstrip("/")
        url = f"{_protocols(fs)[0]}://{root.lstrip('/')}" if _protocols(fs)[0] != "memory" else text
        return Location(url=url.rstrip("/"), fs=fs, root=root, options=given)
    if text.startswith("file://"):
        text = text[len("file://") :]
    root = os.path.abspath(text)
    return Location(url=root, fs=fsspec.filesystem("file"), root=root)
