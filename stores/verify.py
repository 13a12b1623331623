"""Verifying a cache: every file the manifest covers is re-read and its size and sha256
compared; every array the metadata says the cache has must be committed, its metadata
document included; every record must describe the chunk its name says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from softlabels.stores._fs import Location
from softlabels.stores.errors import ChecksumMismatchError, IncompleteCacheError
from softlabels.stores.manifest import Entry, sha256
from softlabels.stores.schema import (
    CHUNK,
    MANIFEST,
    TABLES,
    array_meta_key,
    is_array_meta_key,
    parse_record_name,
)

if TYPE_CHECKING:
    from softlabels.stores.reader import Cache

__all__ = ["Problem", "require_sound", "verify_cache"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a cache, as verify reports it."""

    kind: str  # "missing", "checksum", "size", "uncommitted", "manifest", "table", "metadata"
    where: str  # array path, table or manifest record
    chunk: int | None
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "where": self.where,
            "chunk": self.chunk,
            "message": self.message,
        }


def verify_cache(cache: Cache, *, teacher: str | None = None) -> list[Problem]:
    """Recompute every committed file's checksum and check completeness; list problems
    (of the whole cache, or of the base arrays and one teacher)."""
    loc, manifest = cache.loc, cache.manifest
    problems = [Problem("manifest", p.split(":")[0], None, p) for p in manifest.problems]
    for key in TABLES:
        problems.extend(check_entry(loc, key, manifest.entry(key), kind="table"))
    for name, rec in sorted(manifest.records.items()):
        if rec.chunk is not None:
            continue
        for path, entry in rec.entries.items():
            if path in TABLES:
                continue
            kind = "metadata" if is_array_meta_key(path) else "static"
            problems.extend(check_entry(loc, path, entry, kind=kind, record=name))
    # Each record must describe what its name says: chunk id and rows of that chunk.
    for name, rec in sorted(manifest.records.items()):
        parsed = parse_record_name(name)
        if parsed is None or parsed.kind != CHUNK or parsed.chunk is None:
            continue
        named = parsed.chunk
        start = named * cache.chunk_size
        expected = (start, min(cache.num_samples, start + cache.chunk_size))
        if rec.chunk != named or rec.rows is None or tuple(rec.rows) != expected:
            problems.append(
                Problem(
                    "manifest",
                    f"{MANIFEST}/{name}",
                    named,
                    f"{MANIFEST}/{name}: chunk {rec.chunk} rows {rec.rows} do not match chunk {named} rows {list(expected)}",
                )
            )
    # Every array the cache has must have its committed entries (static ones included),
    # and so must its metadata document, which readers parse only once it is checked.
    names = cache.teacher_names if teacher is None else [teacher]
    row_arrays = cache.row_arrays(teacher)
    arrays = list(row_arrays)
    for t in names:
        for path in cache.teacher(t).static_arrays():
            if manifest.entry(path) is None:
                problems.append(
                    Problem(
                        "missing", path, None, f"{path}: no manifest entry (static record missing)"
                    )
                )
            arrays.append(path)
    for path in arrays:
        key = array_meta_key(path)
        if manifest.entry(key) is None:
            problems.append(
                Problem("missing", key, None, f"{key}: no manifest entry (static record missing)")
            )
    for path in row_arrays:
        committed = manifest.committed(path)
        for c in range(cache.num_chunks):
            entry = committed.get(c)
            if entry is None:
                problems.append(
                    Problem("uncommitted", path, c, f"{path} chunk {c}: never committed")
                )
                continue
            problems.extend(check_entry(loc, path, entry, kind="chunk", chunk=c))
    return problems


def require_sound(cache: Cache, *, teacher: str | None = None) -> None:
    """Refuse a damaged or incomplete cache with a one-line error naming the first problem."""
    problems = verify_cache(cache, teacher=teacher)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        cls = IncompleteCacheError if first.kind == "uncommitted" else ChecksumMismatchError
        raise cls(f"{cache.url}: {first.message}{more}; run `softlabels verify` for the full list")


def check_entry(
    loc: Location,
    where: str,
    entry: Entry | None,
    *,
    kind: str,
    chunk: int | None = None,
    record: str | None = None,
) -> list[Problem]:
    """The problem with one committed file (none when its size and sha256 match)."""
    label = f"{where} chunk {chunk}" if chunk is not None else where
    if entry is None:
        return [
            Problem(
                kind if kind == "table" else "missing", where, chunk, f"{label}: no manifest entry"
            )
        ]
    try:
        data = loc.read(entry.key)
    except (FileNotFoundError, OSError):
        return [Problem("missing", where, chunk, f"{label}: file {entry.key} is missing")]
    if len(data) != entry.nbytes:
        return [
            Problem(
                "size",
                where,
                chunk,
                f"{label}: {entry.key} has {len(data)} bytes, manifest says {entry.nbytes}",
            )
        ]
    if sha256(data) != entry.sha256:
        return [Problem("checksum", where, chunk, f"{label}: checksum mismatch in {entry.key}")]
    return []
