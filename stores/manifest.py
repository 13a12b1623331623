"""The manifest: one small JSON record per committed unit of a cache.

A record is written last, atomically, after every byte it describes is in place, so its
presence is the definition of "committed". Records:

* ``manifest/chunk-<id>.json``: rows ``[start, stop)`` of chunk ``id``, with the key, size
  and sha256 of every array chunk written for it. Arrays added later (a calibrated teacher)
  get their own ``manifest/chunk-<id>+<teacher>.json`` record.
* ``manifest/static[+<teacher>].json``: arrays that are not chunked by row (a teacher's
  classifier weights) and the array metadata documents.
* ``manifest/tables.json``: the Parquet tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from softlabels.stores._fs import Location
from softlabels.stores.errors import CacheError
from softlabels.stores.schema import MANIFEST, parse_record_name, record_name

__all__ = ["Entry", "Manifest", "Record", "entry_for", "record_name", "sha256"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file of the cache as committed: its key, size and sha256."""

    key: str
    nbytes: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "nbytes": self.nbytes, "sha256": self.sha256}


def entry_for(loc: Location, key: str) -> Entry:
    data = loc.read(key)
    return Entry(key=key, nbytes=len(data), sha256=sha256(data))


@dataclass
class Record:
    """A manifest record: a chunk (``chunk`` set) or a static set of files."""

    name: str
    chunk: int | None
    rows: tuple[int, int] | None
    entries: dict[str, Entry] = field(default_factory=dict)  # by array path (or table name)

    @property
    def part(self) -> str | None:
        """The teacher a record was added for (``chunk-000001+a+lws.json``: ``a+lws``)."""
        parsed = parse_record_name(self.name)
        return parsed.part if parsed is not None else None

    def to_json(self) -> bytes:
        doc = {
            "chunk": self.chunk,
            "rows": list(self.rows) if self.rows else None,
            "entries": {k: e.to_dict() for k, e in sorted(self.entries.items())},
        }
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, name: str, data: bytes) -> Record:
        doc = json.loads(data)
        rows = tuple(doc["rows"]) if doc.get("rows") else None
        entries = {
            k: Entry(key=str(v["key"]), nbytes=int(v["nbytes"]), sha256=str(v["sha256"]))
            for k, v in doc["entries"].items()
        }
        return cls(name=name, chunk=doc.get("chunk"), rows=rows, entries=entries)  # type: ignore[arg-type]


class Manifest:
    """All records of a cache, read once; unreadable records are kept as problems."""

    PREFIX = MANIFEST

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self.records: dict[str, Record] = {}
        self.problems: list[str] = []
        for name in loc.list(self.PREFIX):
            if name.startswith("."):
                continue  # temp files of an interrupted write
            parsed = parse_record_name(name)
            if parsed is None:
                self.problems.append(f"{self.PREFIX}/{name}: unexpected file in the manifest")
                continue
            try:
                rec = Record.from_json(name, loc.read(f"{self.PREFIX}/{name}"))
                if parsed.chunk is not None and rec.chunk != parsed.chunk:
                    # Not trusted, so a resumed dump rewrites that chunk and its record.
                    self.problems.append(
                        f"{self.PREFIX}/{name}: record says chunk {rec.chunk}, its name chunk {parsed.chunk}"
                    )
                    continue
                self.records[name] = rec
            except (ValueError, KeyError, TypeError) as exc:
                self.problems.append(
                    f"{self.PREFIX}/{name}: unreadable record ({exc.__class__.__name__})"
                )

    def committed(self, array: str) -> dict[int, Entry]:
        """Committed chunks of one row-chunked array, by chunk id."""
        out: dict[int, Entry] = {}
        for rec in self.records.values():
            if rec.chunk is not None and array in rec.entries:
                out[rec.chunk] = rec.entries[array]
        return out

    def entry(self, key: str) -> Entry | None:
        """The committed entry of a static file or table, if any."""
        for rec in self.records.values():
            if rec.chunk is None and key in rec.entries:
                return rec.entries[key]
        return None

    def entries(self) -> Iterable[tuple[str, Entry]]:
        for name, rec in sorted(self.records.items()):
            for entry in rec.entries.values():
                yield name, entry

    def write(self, record: Record) -> None:
        if record.name in self.records:
            raise CacheError(f"manifest record {record.name} already committed")
        self.loc.write_atomic(f"{self.PREFIX}/{record.name}", record.to_json())
        self.records[record.name] = record
