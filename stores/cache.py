"""The cache API in one import: the format, versions 1 to 3 (a Zarr v3 group plus Parquet tables
and a manifest), its writer, reader and verifier.

The parts live in modules by what they handle: :mod:`~softlabels.stores.schema` (the
format: paths, keys, records), :mod:`~softlabels.stores.writer` (:class:`CacheWriter`,
:func:`add_teacher`, metadata updates), :mod:`~softlabels.stores.reader` (:class:`Cache`,
the read-only view), :mod:`~softlabels.stores.verify` (checksums and completeness) and
:mod:`~softlabels.stores._codec` (chunk bytes). Neither writer nor reader knows about
datasets or models: callers hand in arrays and tables.
"""

from __future__ import annotations

from softlabels.stores.reader import ArrayReader, Cache, TeacherArrays
from softlabels.stores.schema import FORMAT_VERSION, ROOT_ATTR, TABLES, chunk_key
from softlabels.stores.verify import Problem
from softlabels.stores.writer import (
    ArraySpec,
    CacheWriter,
    add_teacher,
    set_tune_tau,
    update_meta,
)

ATTR = ROOT_ATTR  # the old name of the root attribute's key

__all__ = [
    "ATTR",
    "FORMAT_VERSION",
    "TABLES",
    "ArrayReader",
    "ArraySpec",
    "Cache",
    "CacheWriter",
    "Problem",
    "TeacherArrays",
    "add_teacher",
    "chunk_key",
    "set_tune_tau",
    "update_meta",
]
