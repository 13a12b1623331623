"""Byte-level access to a cache location: a local folder or any fsspec URL.

Everything above this module speaks in keys relative to the cache root ("labels/c/0",
"manifest/chunk-000000.json"); this module maps them to a filesystem and gives the few
operations the cache needs, with atomic writes where the backend allows them.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

import fsspec

from softlabels.stores.atomic import write_atomic

__all__ = ["Location", "resolve"]


@dataclass(frozen=True)
class Location:
    """A cache root on some filesystem."""

    url: str  # what the user gave (normalised): a local absolute path or a URL
    fs: Any  # fsspec.AbstractFileSystem
    root: str  # root path inside fs, no trailing slash

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def path(self, key: str) -> str:
        if ".." in key.split("/") or key.startswith("/"):
            raise ValueError(f"Expected a key inside the cache, got {key!r}")
        return posixpath.join(self.root, key) if key else self.root

    def exists(self, key: str = "") -> bool:
        return bool(self.fs.exists(self.path(key)))

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self.path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

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
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def list(self, key: str) -> list[str]:
        """Names (not paths) directly under ``key``; empty when it does not exist."""
        path = self.path(key)
        if not self.fs.exists(path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))

    def du(self, key: str = "") -> int:
        path = self.path(key)
        if not self.fs.exists(path):
            return 0
        return int(self.fs.du(path, total=True))

    def zarr_store(self, *, read_only: bool) -> Any:
        """A zarr v3 store over this location."""
        from zarr.storage import FsspecStore, LocalStore

        if self.is_local:
            return LocalStore(self.root, read_only=read_only)
        return FsspecStore.from_url(self.url, read_only=read_only)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def resolve(path_or_url: str | os.PathLike[str]) -> Location:
    """Turn a path or URL into a :class:`Location`."""
    text = os.fspath(path_or_url)
    if "://" in text and not text.startswith("file://"):
        fs, root = fsspec.core.url_to_fs(text)
        root = root.rstrip("/")
        url = f"{_protocols(fs)[0]}://{root.lstrip('/')}" if _protocols(fs)[0] != "memory" else text
        return Location(url=url.rstrip("/"), fs=fs, root=root)
    if text.startswith("file://"):
        text = text[len("file://") :]
    root = os.path.abspath(text)
    return Location(url=root, fs=fsspec.filesystem("file"), root=root)
