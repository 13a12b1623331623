"""Chunk bytes: the compressor of new arrays, and the hand-written encode/decode of the
codec chains softlabels writes (bytes, then zstd or gzip; blosc read only).

Encoding a whole chunk here and writing it as one file skips zarr's per-call machinery
and a read-back, which dominated the cost of small chunks; chains not handled here return
None and the caller lets zarr do it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softlabels.stores.errors import UsageError

__all__ = ["COMPRESSORS", "compressor", "decode_chunk", "encode_chunk"]

COMPRESSORS = ("zstd", "blosc", "none")


def compressor(name: str) -> Any:
    """The zarr codec of ``--compressor name`` (None for no compression)."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if name == "zstd":
        # Level 1 (level 3 before 0.1.0's dump speed-up): on float16 logits and features it
        # compresses as well (1.57x vs 1.55x on cnn1d features) at a third of the CPU time
        # (1.3 vs 3.7 ms per 1,024 x 128 chunk on one core). The level is stored in every
        # array's zarr.json and the writer encodes with it, so a cache resumed by this
        # version keeps the level it was created with.
        return ZstdCodec(level=1)
    if name == "blosc":
        return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    if name == "none":
        return None
    raise UsageError(f"Expected compressor zstd, blosc or none, got {name!r}")


def encode_chunk(value: np.ndarray, array_meta: dict[str, Any]) -> bytes | None:
    """Encode one full chunk with the codec chain of ``array_meta``; None if not supported."""
    import numcodecs

    data: Any = None  # the bytes so far: an array (not copied when already laid out) or bytes
    for codec in array_meta["codecs"]:
        name, conf = codec["name"], codec.get("configuration", {})
        if name == "bytes" and data is None:
            endian = "<" if conf.get("endian", "little") == "little" else ">"
            data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder(endian))
            data = data.reshape(-1).view(np.uint8)
        elif name == "zstd" and data is not None:
            data = numcodecs.Zstd(
                level=int(conf.get("level", 0)), checksum=bool(conf.get("checksum", False))
            ).encode(data)
        elif name == "gzip" and data is not None:
            data = numcodecs.GZip(level=int(conf.get("level", 5))).encode(data)
        else:
            return None
    if data is None:
        return None
    return data.tobytes() if isinstance(data, np.ndarray) else bytes(data)


def decode_chunk(
    raw: bytes, array_meta: dict[str, Any], chunk_shape: tuple[int, ...]
) -> np.ndarray | None:
    """Decode one chunk's bytes for the codec chains softlabels writes; None if unknown."""
    import numcodecs

    data = raw
    dtype: np.dtype[Any] | None = None
    for codec in reversed(array_meta["codecs"]):
        name, conf = codec["name"], codec.get("configuration", {})
        if name == "zstd":
            data = numcodecs.Zstd().decode(data)
        elif name == "gzip":
            data = numcodecs.GZip().decode(data)
        elif name == "blosc":
            data = numcodecs.Blosc().decode(data)
        elif name == "bytes":
            endian = "<" if conf.get("endian", "little") == "little" else ">"
            dtype = np.dtype(array_meta["data_type"]).newbyteorder(endian)
        else:
            return None
    if dtype is None:
        return None
    return (
        np.frombuffer(bytes(data), dtype=dtype).reshape(chunk_shape).astype(dtype.newbyteorder("="))
    )
