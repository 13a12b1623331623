"""Write a local file completely or not at all: a temp file beside it, then a rename.

The one helper of the project for this (caches, checkpoints, run states, reports, plots).
A reader never sees half a file under the final name: it sees the old file or the new one.
The temp file is ``.<name>.<random>.tmp`` in the same folder (a rename never crosses file
systems), is flushed and fsynced before the rename, and is removed when the write fails.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_file", "is_temp_name", "temp_path", "write_atomic"]


def temp_path(path: str | os.PathLike[str]) -> str:
    """A fresh temp file name beside ``path``."""
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of :func:`temp_path` (or zarr's ``*.partial``)."""
    return name.endswith(".partial") or (name.startswith(".") and name.endswith(".tmp"))


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[IO[bytes]]:
    """``with atomic_file(p) as f: f.write(...)``: ``p`` holds all of it after the block,
    or is untouched if the block raised. The folder is created when missing."""
    final = os.fspath(path)
    directory = os.path.dirname(final)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = temp_path(final)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to the local file ``path`` completely or not at all."""
    with atomic_file(path, fsync=fsync) as f:
        f.write(data)
