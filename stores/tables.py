"""Parquet tables of a cache (``samples.parquet``, ``classes.parquet``), written atomically."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from softlabels.stores._fs import Location

__all__ = ["read_table", "table_bytes", "write_table"]


def table_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet bytes of a table (same table, same bytes)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue()


def write_table(loc: Location, key: str, table: pa.Table) -> bytes:
    data = table_bytes(table)
    loc.write_atomic(key, data)
    return data


def read_table(loc: Location, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(loc.read(key)))
