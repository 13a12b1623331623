"""The cache format, version 1: a Zarr v3 group plus Parquet tables and a manifest.

:class:`CacheWriter` creates or resumes a cache and commits chunks; :class:`Cache` is the
read-only view. Neither knows about datasets or models: callers hand in arrays and tables.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from softlabels.stores._fs import Location, resolve
from softlabels.stores.errors import (
    CacheError,
    CacheExistsError,
    CacheNotFoundError,
    ChecksumMismatchError,
    IncompleteCacheError,
    UsageError,
)
from softlabels.stores.lock import LOCK_KEY, CacheLock
from softlabels.stores.manifest import Entry, Manifest, Record, entry_for, record_name, sha256
from softlabels.stores.tables import read_table, write_table

__all__ = [
    "ATTR",
    "FORMAT_VERSION",
    "ArraySpec",
    "Cache",
    "CacheWriter",
    "Problem",
    "chunk_key",
    "update_meta",
]

FORMAT_VERSION = 1
ATTR = "softlabels"
TABLES = ("samples.parquet", "classes.parquet")


@dataclass(frozen=True)
class ArraySpec:
    """An array of the cache: row-chunked along axis 0 (``by_row``) or stored whole."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    by_row: bool = True

    def chunks(self, chunk_size: int) -> tuple[int, ...]:
        if not self.by_row:
            return tuple(max(1, s) for s in self.shape)
        return (chunk_size, *self.shape[1:])


def chunk_key(path: str, chunk: int, ndim: int) -> str:
    """The store key of row-chunk ``chunk`` of a row-chunked array (zarr v3 default keys)."""
    return "/".join([path, "c", str(chunk), *(["0"] * (ndim - 1))])


def _compressor(name: str) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    if name == "zstd":
        return ZstdCodec(level=3)
    if name == "blosc":
        return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    if name == "none":
        return None
    raise UsageError(f"Expected compressor zstd, blosc or none, got {name!r}")


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


# --------------------------------------------------------------------------- writing


class CacheWriter:
    """Creates or resumes one cache; commits row chunks; holds the write lock until closed.

    :meth:`open` takes the lock; :meth:`attach` joins a cache whose lock another process of
    the same job holds (the other ranks of a distributed dump) and takes none.
    """

    def __init__(
        self,
        loc: Location,
        lock: CacheLock | None,
        meta: dict[str, Any],
        specs: Sequence[ArraySpec],
    ):
        import zarr

        self.loc = loc
        self.lock = lock
        self.meta = meta
        self.specs = {s.path: s for s in specs}
        self.chunk_size = int(meta["chunk_size"])
        self.num_rows = int(meta["N"])
        self.group = zarr.open_group(store=loc.zarr_store(read_only=False), mode="r+")
        self.manifest = Manifest(loc)
        # write_empty_chunks is a runtime setting, not stored: every chunk must exist as a file.
        self._arrays = {
            p: self.group[p].with_config({"write_empty_chunks": True}) for p in self.specs
        }
        self._metas: dict[str, dict[str, Any]] = {}

    # -- creation
    @classmethod
    def open(
        cls,
        url: str,
        *,
        meta: dict[str, Any],
        specs: Sequence[ArraySpec],
        tables: dict[str, Any],
        overwrite: bool = False,
        break_lock: bool = False,
        compressor: str = "zstd",
    ) -> CacheWriter:
        """Create the cache at ``url``, or reopen it for resuming when its config matches.

        ``meta`` must hold ``N``, ``chunk_size`` and ``config_key`` (a hash of everything
        that determines the cache's bytes); a cache with another key is refused unless
        ``overwrite``. ``tables`` maps table file names to pyarrow tables.
        """
        loc = resolve(url)
        if loc.exists() and not loc.fs.isdir(loc.root):
            raise CacheExistsError(f"{loc.url} is a file, not a folder; choose another --out")
        lock = CacheLock(loc, break_stale=break_lock)
        lock.acquire()
        try:
            existing = _read_attrs(loc)
            if existing is None and loc.exists() and loc.list("") and not _only_lock(loc):
                raise CacheExistsError(
                    f"{loc.url} exists and is not a softlabels cache; choose another --out "
                    "(nothing there was touched)"
                )
            if existing is not None and overwrite:
                _clear(loc)
                existing = None
            if existing is not None and existing.get("config_key") != meta["config_key"]:
                raise CacheExistsError(
                    f"{loc.url} holds a cache made with other settings "
                    f"({_diff(existing.get('config', {}), meta.get('config', {}))}); "
                    "use --overwrite to replace it or choose another --out"
                )
            if existing is None:
                _remove_partials(loc)
                _create_group(loc, meta)
            else:
                meta = existing
                _remove_partials(loc)
            # Idempotent: a crash during creation leaves a group that this completes.
            _ensure_arrays(loc, meta, specs, compressor)
            manifest = Manifest(loc)
            if record_name("tables") not in manifest.records:
                rec = Record(name=record_name("tables"), chunk=None, rows=None)
                for key, table in tables.items():
                    data = write_table(loc, key, table)
                    rec.entries[key] = Entry(key=key, nbytes=len(data), sha256=sha256(data))
                manifest.write(rec)
            return cls(loc, lock, meta, specs)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def attach(cls, url: str, *, meta: dict[str, Any], specs: Sequence[ArraySpec]) -> CacheWriter:
        """Join a cache that another process created with :meth:`open` and holds locked.

        For the ranks of a distributed dump other than rank 0: they commit the chunks given
        to them (each chunk has its own manifest record, so ranks never write the same file)
        and take no lock. The cache must exist with the ``config_key`` of ``meta`` and with
        every array of ``specs``.
        """
        loc = resolve(url)
        existing = _read_attrs(loc)
        if existing is None:
            raise CacheNotFoundError(
                f"{loc.url} is not a softlabels cache (yet); attach after the writer that "
                "holds the lock created it"
            )
        if existing.get("config_key") != meta["config_key"]:
            raise CacheExistsError(
                f"{loc.url} was created with settings other than this process's "
                f"({_diff(existing.get('config', {}), meta.get('config', {}))}); every process "
                "must see the same dataset, teacher files and options"
            )
        missing = [s.path for s in specs if not loc.exists(f"{s.path}/zarr.json")]
        if missing:
            raise CacheError(f"{loc.url} has no array {missing[0]}; the cache was not created")
        return cls(loc, None, existing, specs)

    # -- state
    @property
    def num_chunks(self) -> int:
        return -(-self.num_rows // self.chunk_size)

    def rows(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_size
        return start, min(self.num_rows, start + self.chunk_size)

    def pending_chunks(self, part: str | None = None) -> list[int]:
        """Chunks without a committed record (for the base arrays, or for ``part``)."""
        done = {
            r.chunk
            for r in self.manifest.records.values()
            if r.chunk is not None and _part_of(r.name) == part
        }
        return [c for c in range(self.num_chunks) if c not in done]

    def static_done(self, part: str | None = None) -> bool:
        return record_name("static", part=part) in self.manifest.records

    # -- commits
    def write_static(self, arrays: dict[str, np.ndarray], part: str | None = None) -> None:
        rec = Record(name=record_name("static", part=part), chunk=None, rows=None)
        for path, value in arrays.items():
            self._arrays[path][...] = value
            spec = self.specs[path]
            key = chunk_key(path, 0, len(spec.shape))
            rec.entries[path] = entry_for(self.loc, key)
            meta_key = f"{path}/zarr.json"
            rec.entries[meta_key] = entry_for(self.loc, meta_key)
        for path in self.specs:
            if self.specs[path].by_row and (part is None or f"/{part}/" in f"/{path}/"):
                meta_key = f"{path}/zarr.json"
                rec.entries[meta_key] = entry_for(self.loc, meta_key)
        self.manifest.write(rec)

    def write_chunk(self, chunk: int, data: dict[str, np.ndarray], part: str | None = None) -> None:
        """Write every array of one row chunk, then commit it with its manifest record.

        Chunks are encoded here with the array's own codec chain (numcodecs) and written as
        whole files; the checksum is taken from the bytes in memory. This skips zarr's
        per-call machinery and a read-back, which dominated the cost of small chunks.
        """
        start, stop = self.rows(chunk)
        rec = Record(name=record_name("chunk", chunk, part), chunk=chunk, rows=(start, stop))
        for path, value in data.items():
            spec = self.specs[path]
            if value.shape[0] != stop - start:
                raise ValueError(
                    f"Expected {stop - start} rows for {path} chunk {chunk}, got {value.shape[0]}"
                )
            meta = self._array_meta(path)
            full = np.zeros((self.chunk_size, *spec.shape[1:]), dtype=np.dtype(spec.dtype))
            full[: stop - start] = value  # the last chunk is padded with the fill value (0)
            raw = _encode_chunk(full, meta)
            if raw is None:  # a codec chain not encoded by hand: let zarr write it
                self._arrays[path][start:stop] = value
                rec.entries[path] = entry_for(self.loc, chunk_key(path, chunk, len(spec.shape)))
                continue
            key = chunk_key(path, chunk, len(spec.shape))
            self.loc.write(key, raw)
            rec.entries[path] = Entry(key=key, nbytes=len(raw), sha256=sha256(raw))
        self.manifest.write(rec)

    def _array_meta(self, path: str) -> dict[str, Any]:
        if path not in self._metas:
            self._metas[path] = json.loads(self.loc.read(f"{path}/zarr.json"))
        return self._metas[path]

    def set_attrs(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.group.attrs[ATTR] = meta

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _part_of(record: str) -> str | None:
    stem = record[: -len(".json")]
    return stem.split("+", 1)[1] if "+" in stem else None


def _is_temp(name: str) -> bool:
    """A temp file of an interrupted softlabels or zarr write."""
    return name.endswith(".partial") or (name.startswith(".") and name.endswith(".tmp"))


def _only_lock(loc: Location) -> bool:
    """Whether the folder holds nothing but our lock and temp files of an interrupted
    creation (anything else makes it foreign, and it is never touched)."""
    return all(name == LOCK_KEY or _is_temp(name) for name in loc.list(""))


def _read_attrs(loc: Location) -> dict[str, Any] | None:
    if not loc.exists("zarr.json"):
        return None
    try:
        doc = json.loads(loc.read("zarr.json"))
    except ValueError:
        return None
    attrs = doc.get("attributes", {}).get(ATTR)
    return dict(attrs) if isinstance(attrs, dict) else None


def _clear(loc: Location) -> None:
    for name in loc.list(""):
        if name != LOCK_KEY:
            loc.remove(name)


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return "different code version"
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])


def _remove_partials(loc: Location) -> None:
    """Delete temp files a killed writer left (zarr's ``*.partial``, our ``.*.tmp``)."""
    for path in loc.fs.find(loc.root):
        if _is_temp(posixpath.basename(path)):
            loc.fs.rm(path)


def _create_group(loc: Location, meta: dict[str, Any]) -> None:
    # The root document is written once, with its attributes, atomically: a crash leaves
    # either no cache or a cache that resumes (never a group without the softlabels key).
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {ATTR: meta}}
    loc.write_atomic("zarr.json", json.dumps(doc, indent=2, allow_nan=False).encode())


def _ensure_arrays(
    loc: Location, meta: dict[str, Any], specs: Sequence[ArraySpec], compressor: str
) -> None:
    import zarr

    group = zarr.open_group(store=loc.zarr_store(read_only=False), mode="r+")
    codec = _compressor(compressor)
    chunk_size = int(meta["chunk_size"])
    for spec in specs:
        # Parent groups first, each idempotently: a crash between writes leaves none missing.
        parts = spec.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not loc.exists(f"{sub}/zarr.json"):
                group.require_group(sub)
        if loc.exists(f"{spec.path}/zarr.json"):
            continue
        group.create_array(
            spec.path,
            shape=spec.shape,
            chunks=spec.chunks(chunk_size),
            dtype=spec.dtype,
            compressors=codec,
            fill_value=0,
            overwrite=True,
        )


def update_meta(url: str, key: str, value: Any, *, owner: str = "update") -> dict[str, Any]:
    """Set ``key`` of the ``softlabels`` root attribute to ``value`` under the write lock.

    Only the root ``zarr.json`` changes, rewritten atomically (temp file + rename where the
    backend allows). ``value`` must be JSON-serialisable. Returns the updated attribute.
    """
    loc = resolve(url)
    missing = f"{loc.url} is not a softlabels cache; nothing was written"
    if _read_attrs(loc) is None:  # before locking: taking the lock would create the folder
        raise CacheNotFoundError(missing)
    with CacheLock(loc, owner=owner):
        meta = _read_attrs(loc)
        if meta is None:
            raise CacheNotFoundError(missing)
        meta[key] = value
        _write_meta_locked(loc, meta)
    return meta


def _write_meta_locked(loc: Location, meta: dict[str, Any]) -> None:
    doc = json.loads(loc.read("zarr.json"))
    doc["attributes"][ATTR] = meta
    loc.write_atomic("zarr.json", json.dumps(doc, indent=2, allow_nan=False).encode())


def add_teacher(
    url: str,
    name: str,
    info: dict[str, Any],
    rows: dict[str, np.ndarray],
    static: dict[str, np.ndarray] | None = None,
    *,
    replace: bool = False,
    break_lock: bool = False,
    compressor: str = "zstd",
) -> None:
    """Add a teacher to a complete cache: row arrays ``teachers/<name>/<key>`` ([N, ...]),
    optional static arrays, with their own manifest records (``*+<name>.json``).

    The teacher appears in the root attributes only after all its chunks are committed, so
    a reader never sees half of it. ``replace`` first removes a teacher of that name.
    """
    loc = resolve(url)
    if _read_attrs(loc) is None:
        raise CacheNotFoundError(f"{loc.url} is not a softlabels cache; nothing was written")
    lock = CacheLock(loc, break_stale=break_lock, owner="add-teacher")
    lock.acquire()
    try:
        meta = _read_attrs(loc)
        assert meta is not None
        if name in meta["teachers"]:
            if not replace:
                raise CacheExistsError(
                    f"{loc.url} already has a teacher {name!r}; use --overwrite to replace it"
                )
            meta["teachers"].pop(name)
            _write_meta_locked(loc, meta)
        # Leftovers of an earlier (maybe interrupted) add of this name.
        loc.remove(f"teachers/{name}")
        for rec in loc.list(Manifest.PREFIX):
            if _part_of(rec) == name if rec.endswith(".json") else False:
                loc.remove(f"{Manifest.PREFIX}/{rec}")
        n = int(meta["N"])
        specs = []
        for key, arr in rows.items():
            if arr.shape[0] != n:
                raise ValueError(f"Expected {n} rows for {key}, got {arr.shape[0]}")
            specs.append(ArraySpec(f"teachers/{name}/{key}", tuple(arr.shape), str(arr.dtype)))
        for key, arr in (static or {}).items():
            specs.append(
                ArraySpec(f"teachers/{name}/{key}", tuple(arr.shape), str(arr.dtype), by_row=False)
            )
        _ensure_arrays(loc, meta, specs, compressor)
        writer = CacheWriter(loc, lock, meta, specs)
        # The static record also covers the metadata documents of the new row arrays.
        writer.write_static(
            {f"teachers/{name}/{k}": v for k, v in (static or {}).items()}, part=name
        )
        for chunk in range(writer.num_chunks):
            start, stop = writer.rows(chunk)
            writer.write_chunk(
                chunk, {f"teachers/{name}/{k}": v[start:stop] for k, v in rows.items()}, part=name
            )
        # What the teacher has is what was written, whatever ``info`` said.
        meta["teachers"][name] = info | {
            "features": "features" in rows,
            "classifier": "classifier/weight" in (static or {}),
        }
        _write_meta_locked(loc, meta)
    finally:
        lock.release()


# --------------------------------------------------------------------------- reading


def _encode_chunk(value: np.ndarray, array_meta: dict[str, Any]) -> bytes | None:
    """Encode one full chunk with the codec chain of ``array_meta``; None if not supported."""
    import numcodecs

    data: Any = None
    for codec in array_meta["codecs"]:
        name, conf = codec["name"], codec.get("configuration", {})
        if name == "bytes":
            endian = "<" if conf.get("endian", "little") == "little" else ">"
            data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder(endian)).tobytes()
        elif name == "zstd" and data is not None:
            data = numcodecs.Zstd(
                level=int(conf.get("level", 0)), checksum=bool(conf.get("checksum", False))
            ).encode(data)
        elif name == "gzip" and data is not None:
            data = numcodecs.GZip(level=int(conf.get("level", 5))).encode(data)
        else:
            return None
    return bytes(data) if data is not None else None


def _decode_chunk(
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


@dataclass
class ArrayReader:
    """Verified chunk-wise reads of one row-chunked array of a cache."""

    cache: Cache
    path: str
    _meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        key = f"{self.path}/zarr.json"
        try:
            raw = self.cache.loc.read(key)
        except FileNotFoundError:
            raise ChecksumMismatchError(
                f"{self.cache.loc.url}: the metadata of {self.path} is missing ({key}); run `softlabels verify`"
            ) from None
        entry = self.cache.manifest.entry(key)
        try:
            if entry is not None and sha256(raw) != entry.sha256:
                raise ValueError("checksum mismatch")
            self._meta = json.loads(raw)
            self._meta["shape"], self._meta["codecs"]
        except (ValueError, KeyError, TypeError):
            raise ChecksumMismatchError(
                f"{self.cache.loc.url}: the metadata of {self.path} is damaged ({key}); "
                "run `softlabels verify` and redo the dump"
            ) from None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._meta["shape"])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._meta["data_type"])

    @property
    def chunk_rows(self) -> int:
        return int(self._meta["chunk_grid"]["configuration"]["chunk_shape"][0])

    @property
    def num_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk_rows)

    def read_chunk(self, chunk: int, *, verify: bool = True) -> np.ndarray:
        """Rows of chunk ``chunk``; with ``verify`` the bytes are checked against the manifest."""
        key = chunk_key(self.path, chunk, len(self.shape))
        start = chunk * self.chunk_rows
        stop = min(self.shape[0], start + self.chunk_rows)
        entry = self.cache.manifest.committed(self.path).get(chunk)
        if entry is None:
            raise IncompleteCacheError(
                f"{self.cache.loc.url}: chunk {chunk} of {self.path} was never committed; "
                "rerun the dump to complete the cache"
            )
        try:
            raw = self.cache.loc.read(key)
        except FileNotFoundError as exc:
            raise ChecksumMismatchError(
                f"{self.cache.loc.url}: chunk {chunk} of {self.path} is missing ({key}); "
                "run `softlabels verify` and redo the dump"
            ) from exc
        if verify and sha256(raw) != entry.sha256:
            raise ChecksumMismatchError(
                f"{self.cache.loc.url}: chunk {chunk} of {self.path} is corrupt (checksum mismatch at "
                f"{key}); run `softlabels verify` and redo the dump"
            )
        chunk_shape = (self.chunk_rows, *self.shape[1:])
        out = _decode_chunk(raw, self._meta, chunk_shape)
        if out is None:  # a codec chain we do not decode by hand: let zarr read it
            out = np.asarray(self.cache.group[self.path][start:stop])
            return out
        return out[: stop - start]

    def iter_chunks(self, *, verify: bool = True) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, rows) for every chunk in order, each read exactly once."""
        for c in range(self.num_chunks):
            start = c * self.chunk_rows
            data = self.read_chunk(c, verify=verify)
            yield start, start + data.shape[0], data

    def read_all(self, *, verify: bool = True) -> np.ndarray:
        out = np.empty(self.shape, dtype=self.dtype)
        for start, stop, data in self.iter_chunks(verify=verify):
            out[start:stop] = data
        return out


@dataclass
class TeacherArrays:
    """One teacher's arrays: lazy zarr arrays plus verified chunk readers."""

    cache: Cache
    name: str

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.cache.meta["teachers"][self.name])

    @property
    def logits(self) -> Any:
        """Lazy zarr array [N, V, C] (slicing reads only the chunks needed)."""
        return self.cache.group[f"teachers/{self.name}/logits"]

    @property
    def features(self) -> Any | None:
        path = f"teachers/{self.name}/features"
        return self.cache.group[path] if self.info.get("features") else None

    @property
    def classifier(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.info.get("classifier"):
            return None
        base = f"teachers/{self.name}/classifier"
        return np.asarray(self.cache.group[f"{base}/weight"][...]), np.asarray(
            self.cache.group[f"{base}/bias"][...]
        )

    def reader(self, what: str = "logits") -> ArrayReader:
        return ArrayReader(self.cache, f"teachers/{self.name}/{what}")


class Cache:
    """Read-only view of a softlabels cache (a local folder or an fsspec URL)."""

    def __init__(self, path_or_url: str) -> None:
        import zarr

        self.loc = resolve(path_or_url)
        attrs = _read_attrs(self.loc)
        if attrs is None:
            what = "does not exist" if not self.loc.exists() else "is not a softlabels cache"
            raise CacheNotFoundError(f"{self.loc.url} {what}; create one with `softlabels dump`")
        if int(attrs.get("format", -1)) != FORMAT_VERSION:
            raise CacheError(
                f"{self.loc.url} has cache format {attrs.get('format')}; this softlabels reads "
                f"format {FORMAT_VERSION}"
            )
        self.meta: dict[str, Any] = attrs
        self.group = zarr.open_group(store=self.loc.zarr_store(read_only=True), mode="r")
        self.manifest = Manifest(self.loc)
        self._labels: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Cache({self.loc.url!r}, N={self.num_samples}, C={self.num_classes}, V={self.num_views}, teachers={self.teacher_names})"

    # -- shape and metadata
    @property
    def url(self) -> str:
        return self.loc.url

    @property
    def num_samples(self) -> int:
        return int(self.meta["N"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["C"])

    @property
    def num_views(self) -> int:
        return int(self.meta["V"])

    @property
    def chunk_size(self) -> int:
        return int(self.meta["chunk_size"])

    @property
    def num_chunks(self) -> int:
        return -(-self.num_samples // self.chunk_size)

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def teacher_names(self) -> list[str]:
        return list(self.meta["teachers"])

    @property
    def dataset(self) -> dict[str, Any]:
        return dict(self.meta["dataset"])

    @property
    def fingerprint(self) -> str:
        return str(self.meta["dataset"]["fingerprint"])

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = ArrayReader(self, "labels").read_all().astype(np.int64)
        return self._labels

    @property
    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    @property
    def view_seeds(self) -> Any:
        return self.group["views/seed"]

    def teacher(self, name: str) -> TeacherArrays:
        if name not in self.meta["teachers"]:
            raise UsageError(
                f"Expected a teacher of this cache ({', '.join(self.teacher_names)}), got {name!r}"
            )
        return TeacherArrays(self, name)

    def samples(self) -> Any:
        return read_table(self.loc, "samples.parquet")

    def classes(self) -> Any:
        return read_table(self.loc, "classes.parquet")

    # -- integrity
    def row_arrays(self, teacher: str | None = None) -> list[str]:
        """Row-chunked arrays of the cache (or of one teacher plus the base arrays)."""
        base = ["labels", "views/seed"]
        names = self.teacher_names if teacher is None else [teacher]
        out = list(base)
        for t in names:
            out.append(f"teachers/{t}/logits")
            if self.meta["teachers"][t].get("features"):
                out.append(f"teachers/{t}/features")
        return out

    def missing_chunks(self, teacher: str | None = None) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for path in self.row_arrays(teacher):
            done = self.manifest.committed(path)
            missing = [c for c in range(self.num_chunks) if c not in done]
            if missing:
                out[path] = missing
        return out

    def is_complete(self, teacher: str | None = None) -> bool:
        return not self.missing_chunks(teacher)

    def require_complete(self, teacher: str | None = None) -> None:
        missing = self.missing_chunks(teacher)
        if missing:
            path, chunks = next(iter(missing.items()))
            total = sum(len(c) for c in missing.values())
            raise IncompleteCacheError(
                f"{self.url} is incomplete: {total} chunk(s) not committed (first: {path} chunk "
                f"{chunks[0]}); rerun the same `softlabels dump` command to finish it"
            )

    def verify(self, *, teacher: str | None = None) -> list[Problem]:
        """Recompute every committed file's checksum and check completeness; list problems."""
        problems = [Problem("manifest", p.split(":")[0], None, p) for p in self.manifest.problems]
        for key in TABLES:
            entry = self.manifest.entry(key)
            problems.extend(_check_entry(self.loc, key, entry, kind="table"))
        for name, rec in sorted(self.manifest.records.items()):
            if rec.chunk is not None:
                continue
            for path, entry in rec.entries.items():
                if path in TABLES:
                    continue
                kind = "metadata" if path.endswith("zarr.json") else "static"
                problems.extend(_check_entry(self.loc, path, entry, kind=kind, record=name))
        # Each record must describe what its name says: chunk id and rows of that chunk.
        for name, rec in sorted(self.manifest.records.items()):
            if not name.startswith("chunk-"):
                continue
            named = int(name[len("chunk-") :].split("+", 1)[0].split(".", 1)[0])
            start = named * self.chunk_size
            expected = (start, min(self.num_samples, start + self.chunk_size))
            if rec.chunk != named or rec.rows is None or tuple(rec.rows) != expected:
                problems.append(
                    Problem(
                        "manifest",
                        f"manifest/{name}",
                        named,
                        f"manifest/{name}: chunk {rec.chunk} rows {rec.rows} do not match chunk {named} rows {list(expected)}",
                    )
                )
        # Every array the cache has must have its committed entries (static ones included).
        names = self.teacher_names if teacher is None else [teacher]
        for t in names:
            info = self.meta["teachers"][t]
            statics = ["classifier/weight", "classifier/bias"] if info.get("classifier") else []
            for sub in statics:
                path = f"teachers/{t}/{sub}"
                present = self.loc.exists(f"{path}/zarr.json") or sub == "classifier/weight"
                if present and self.manifest.entry(path) is None:
                    problems.append(
                        Problem(
                            "missing",
                            path,
                            None,
                            f"{path}: no manifest entry (static record missing)",
                        )
                    )
        for path in self.row_arrays(teacher):
            committed = self.manifest.committed(path)
            for c in range(self.num_chunks):
                entry = committed.get(c)
                if entry is None:
                    problems.append(
                        Problem("uncommitted", path, c, f"{path} chunk {c}: never committed")
                    )
                    continue
                problems.extend(_check_entry(self.loc, path, entry, kind="chunk", chunk=c))
        return problems

    def require_sound(self, teacher: str | None = None) -> None:
        """Refuse a damaged or incomplete cache with a one-line error naming the first problem."""
        problems = self.verify(teacher=teacher)
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            cls = IncompleteCacheError if first.kind == "uncommitted" else ChecksumMismatchError
            raise cls(
                f"{self.url}: {first.message}{more}; run `softlabels verify` for the full list"
            )

    def nbytes_on_disk(self, prefix: str = "") -> int:
        return self.loc.du(prefix)


def _check_entry(
    loc: Location,
    where: str,
    entry: Entry | None,
    *,
    kind: str,
    chunk: int | None = None,
    record: str | None = None,
) -> list[Problem]:
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
