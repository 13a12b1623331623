"""The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed.

A file is a 4-byte big-endian magic number (two zero bytes, the element type ``0x08`` for
unsigned bytes, the number of dimensions), one big-endian uint32 per dimension, then the
elements in C order: ``2049`` (``0x00000801``) is a vector of labels, ``2051``
(``0x00000803``) a stack of images ``[N, rows, cols]``. Every defect (not gzip, wrong magic
number, truncated header or data, trailing bytes) is one :class:`UsageError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from softlabels.errors import UsageError

__all__ = ["IDX_IMAGES", "IDX_LABELS", "read_idx"]

IDX_LABELS = 0x00000801  # 2049: uint8 [N]
IDX_IMAGES = 0x00000803  # 2051: uint8 [N, rows, cols]


def _bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise UsageError(
            f"Cannot read IDX file {str(path)!r} ({type(err).__name__}: {err}); replace the file"
        ) from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of the IDX file at ``path``, whose magic number must be ``magic``."""
    raw = _bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    where = f"in {str(path)!r}"
    if len(raw) < 4:
        raise UsageError(f"Expected an IDX file, got {len(raw)} bytes ({where}); replace the file")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise UsageError(
            f"Expected IDX magic number {magic} ({ndim}-D uint8), got {got} ({where}); "
            "check which file this is"
        )
    if len(raw) < header:
        raise UsageError(
            f"Expected a {header}-byte IDX header, got {len(raw)} bytes ({where}); the file is "
            "truncated, replace it"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)
    if len(raw) - header != size:
        raise UsageError(
            f"Expected {size} data bytes for shape {dims}, got {len(raw) - header} ({where}); "
            "the file is truncated or damaged, replace it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
