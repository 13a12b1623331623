"""Writing a cache: create or resume it, commit row chunks and static arrays, add a
teacher to a complete cache, update its root metadata under the lock.

A chunk is committed when its manifest record exists, written after every byte it lists.
Nothing here knows about datasets or models: callers hand in the metadata record, arrays
and tables.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from softlabels.stores._codec import compressor as make_compressor
from softlabels.stores._codec import encode_chunk
from softlabels.stores._fs import Location, resolve
from softlabels.stores._root import create_root, parse_meta, read_root_attrs, rewrite_root_attrs
from softlabels.stores.atomic import is_temp_name
from softlabels.stores.errors import CacheError, CacheExistsError, CacheNotFoundError
from softlabels.stores.lock import LOCK_KEY, CacheLock
from softlabels.stores.manifest import Entry, Manifest, Record, entry_for, sha256
from softlabels.stores.schema import (
    CHUNK,
    CLASSIFIER_WEIGHT,
    FEATURES,
    MANIFEST,
    ROOT_ATTR,
    STATIC,
    TABLES_RECORD,
    TOPK_VALUES,
    CacheMeta,
    TeacherInfo,
    TuneTau,
    array_meta_key,
    chunk_key,
    config_of,
    format_for,
    parse_record_name,
    record_name,
    teacher_array,
    teacher_root,
)
from softlabels.stores.tables import write_table

__all__ = [
    "ArraySpec",
    "CacheWriter",
    "add_teacher",
    "set_tune_tau",
    "update_meta",
]


@dataclass(frozen=True)
class ArraySpec:
    """An array of the cache: row-chunked along axis 0 (``by_row``) or stored whole.

    ``per_chunk``: an array of one row per chunk of the cache (``[num_chunks, ...]``, e.g. a
    sparse teacher's measured error), its row ``c`` written and committed with chunk ``c``.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    by_row: bool = True
    per_chunk: bool = False

    def chunks(self, chunk_size: int) -> tuple[int, ...]:
        if not self.by_row:
            return tuple(max(1, s) for s in self.shape)
        return (1 if self.per_chunk else chunk_size, *self.shape[1:])


def _as_meta(meta: CacheMeta | Mapping[str, Any]) -> CacheMeta:
    return meta if isinstance(meta, CacheMeta) else CacheMeta.from_dict(meta)


class CacheWriter:
    """Creates or resumes one cache; commits row chunks; holds the write lock until closed.

    :meth:`open` takes the lock; :meth:`attach` joins a cache whose lock another process of
    the same job holds (the other ranks of a distributed dump) and takes none.
    """

    def __init__(
        self,
        loc: Location,
        lock: CacheLock | None,
        meta: CacheMeta | Mapping[str, Any],
        specs: Sequence[ArraySpec],
    ):
        self.loc = loc
        self.lock = lock
        self.metadata = _as_meta(meta)
        self.specs = {s.path: s for s in specs}
        self.chunk_size = self.metadata.chunk_size
        self.num_rows = self.metadata.N
        self.manifest = Manifest(loc)
        self._metas: dict[str, dict[str, Any]] = {}
        # What :meth:`prepare` still has to do (set by :meth:`open` with ``prepare=False``).
        self._setup: tuple[dict[str, Any], str] | None = None
        self._zarr_group: Any = None
        self._zarr_arrays: dict[str, Any] = {}

    @property
    def group(self) -> Any:
        """The zarr group, opened on first use (commits of the codec chains softlabels
        writes do not need it)."""
        if self._zarr_group is None:
            import zarr

            self._zarr_group = zarr.open_group(
                store=self.loc.zarr_store(read_only=False), mode="r+"
            )
        return self._zarr_group

    def _zarr_array(self, path: str) -> Any:
        if path not in self._zarr_arrays:
            # write_empty_chunks is a runtime setting, not stored: every chunk must exist.
            self._zarr_arrays[path] = self.group[path].with_config({"write_empty_chunks": True})
        return self._zarr_arrays[path]

    @property
    def meta(self) -> dict[str, Any]:
        """The root metadata as a plain dict (read :attr:`metadata` in new code)."""
        return self.metadata.to_dict()

    # -- creation
    @classmethod
    def open(
        cls,
        url: str,
        *,
        meta: CacheMeta | Mapping[str, Any],
        specs: Sequence[ArraySpec],
        tables: dict[str, Any],
        overwrite: bool = False,
        break_lock: bool = False,
        compressor: str = "zstd",
        prepare: bool = True,
    ) -> CacheWriter:
        """Create the cache at ``url``, or reopen it for resuming when its config matches.

        ``meta`` (a :class:`CacheMeta`, or its dict) holds ``config_key``, a hash of
        everything that determines the cache's bytes; a cache with another key is refused
        unless ``overwrite``. ``tables`` maps table file names to pyarrow tables.
        With ``prepare=False`` the arrays and tables are left to :meth:`prepare`, which the
        caller runs before the first commit (the lock is held and the root exists already).
        """
        record = _as_meta(meta)
        loc = resolve(url)
        if loc.exists() and not loc.fs.isdir(loc.root):
            raise CacheExistsError(f"{loc.url} is a file, not a folder; choose another --out")
        lock = CacheLock(loc, break_stale=break_lock)
        lock.acquire()
        try:
            existing = read_root_attrs(loc)
            if existing is None and loc.exists() and loc.list("") and not _only_lock(loc):
                raise CacheExistsError(
                    f"{loc.url} exists and is not a softlabels cache; choose another --out "
                    "(nothing there was touched)"
                )
            if existing is not None and overwrite:
                _clear(loc)
                existing = None
            if existing is not None and config_of(existing)[0] != record.config_key:
                raise CacheExistsError(
                    f"{loc.url} holds a cache made with other settings "
                    f"({_diff(config_of(existing)[1], record.config)}); "
                    "use --overwrite to replace it or choose another --out"
                )
            if existing is None:
                _remove_partials(loc)
                create_root(loc, record.to_dict())
            else:
                record = parse_meta(loc, existing)
                _remove_partials(loc)
            writer = cls(loc, lock, record, specs)
            writer._setup = (tables, compressor)
            if prepare:
                writer.prepare()
            return writer
        except BaseException:
            lock.release()
            raise

    def prepare(self) -> None:
        """The rest of :meth:`open`: create the arrays (idempotent: a crash during creation
        leaves a group that this completes) and commit the tables. Nothing is committed
        before it ran; a dump runs it in its commit thread, overlapped with its first chunk."""
        if self._setup is None:
            return
        tables, compressor = self._setup
        _ensure_arrays(self.loc, self.chunk_size, list(self.specs.values()), compressor)
        if record_name(TABLES_RECORD) not in self.manifest.records:
            rec = Record(name=record_name(TABLES_RECORD), chunk=None, rows=None)
            for key, table in tables.items():
                data = write_table(self.loc, key, table)
                rec.entries[key] = Entry(key=key, nbytes=len(data), sha256=sha256(data))
            self.manifest.write(rec)
        self._setup = None

    @classmethod
    def attach(
        cls, url: str, *, meta: CacheMeta | Mapping[str, Any], specs: Sequence[ArraySpec]
    ) -> CacheWriter:
        """Join a cache that another process created with :meth:`open` and holds locked.

        For the ranks of a distributed dump other than rank 0: they commit the chunks given
        to them (each chunk has its own manifest record, so ranks never write the same file)
        and take no lock. The cache must exist with the ``config_key`` of ``meta`` and with
        every array of ``specs``.
        """
        record = _as_meta(meta)
        loc = resolve(url)
        existing = read_root_attrs(loc)
        if existing is None:
            raise CacheNotFoundError(
                f"{loc.url} is not a softlabels cache (yet); attach after the writer that "
                "holds the lock created it"
            )
        if config_of(existing)[0] != record.config_key:
            raise CacheExistsError(
                f"{loc.url} was created with settings other than this process's "
                f"({_diff(config_of(existing)[1], record.config)}); every process "
                "must see the same dataset, teacher files and options"
            )
        missing = [s.path for s in specs if not loc.exists(array_meta_key(s.path))]
        if missing:
            raise CacheError(f"{loc.url} has no array {missing[0]}; the cache was not created")
        return cls(loc, None, parse_meta(loc, existing), specs)

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
            if r.chunk is not None and r.part == part
        }
        return [c for c in range(self.num_chunks) if c not in done]

    def static_done(self, part: str | None = None) -> bool:
        return record_name(STATIC, part=part) in self.manifest.records

    # -- commits
    def write_static(self, arrays: dict[str, np.ndarray], part: str | None = None) -> None:
        """Write the arrays stored whole and commit them, with the metadata documents of
        every array (of teacher ``part`` only, when given), in one static record."""
        self._check_prepared()
        rec = Record(name=record_name(STATIC, part=part), chunk=None, rows=None)
        for path, value in arrays.items():
            spec = self.specs[path]
            full = np.asarray(value, dtype=np.dtype(spec.dtype))
            if full.shape == spec.chunks(self.chunk_size):  # one chunk: encoded by hand
                rec.entries[path] = self._write_array_chunk(path, 0, full, ..., value)
            else:
                self._zarr_array(path)[...] = value
                rec.entries[path] = entry_for(self.loc, chunk_key(path, 0, len(spec.shape)))
            meta_key = array_meta_key(path)
            rec.entries[meta_key] = entry_for(self.loc, meta_key)
        prefix = None if part is None else f"{teacher_root(part)}/"
        for path, spec in self.specs.items():
            if spec.by_row and (prefix is None or path.startswith(prefix)):
                meta_key = array_meta_key(path)
                rec.entries[meta_key] = entry_for(self.loc, meta_key)
        self._commit(rec)

    def write_chunk(self, chunk: int, data: dict[str, np.ndarray], part: str | None = None) -> None:
        """Write every array of one row chunk, then commit it with its manifest record.

        Chunks are encoded here with the array's own codec chain (numcodecs) and written as
        whole files; the checksum is taken from the bytes in memory. This skips zarr's
        per-call machinery and a read-back, which dominated the cost of small chunks. A
        whole chunk of the array's dtype is encoded as it is (no copy); the last, short
        chunk is padded with the fill value (0).
        """
        self._check_prepared()
        start, stop = self.rows(chunk)
        rec = Record(name=record_name(CHUNK, chunk, part), chunk=chunk, rows=(start, stop))
        for path, value in data.items():
            spec = self.specs[path]
            lo, hi, size = (
                (chunk, chunk + 1, 1) if spec.per_chunk else (start, stop, self.chunk_size)
            )
            if value.shape[0] != hi - lo:
                raise ValueError(
                    f"Expected {hi - lo} rows for {path} chunk {chunk}, got {value.shape[0]}"
                )
            dtype = np.dtype(spec.dtype)
            if hi - lo == size and value.dtype == dtype and value.shape[1:] == spec.shape[1:]:
                full = value
            else:
                full = np.zeros((size, *spec.shape[1:]), dtype=dtype)
                full[: hi - lo] = value
            rec.entries[path] = self._write_array_chunk(path, chunk, full, slice(lo, hi), value)
        self._commit(rec)

    def _write_array_chunk(
        self, path: str, chunk: int, full: np.ndarray, region: Any, value: np.ndarray
    ) -> Entry:
        """Encode and write chunk ``chunk`` of ``path`` (``full``: the whole chunk) as one
        file; its manifest entry. A codec chain not encoded by hand goes through zarr
        (``value`` written at ``region``) and the file is read back."""
        key = chunk_key(path, chunk, len(self.specs[path].shape))
        raw = encode_chunk(full, self._array_meta(path))
        if raw is None:
            self._zarr_array(path)[region] = value
            return entry_for(self.loc, key)
        self.loc.write(key, raw)
        return Entry(key=key, nbytes=len(raw), sha256=sha256(raw))

    def _check_prepared(self) -> None:
        if self._setup is not None:
            raise RuntimeError("CacheWriter.prepare() must run before the first commit")

    def _commit(self, rec: Record) -> None:
        """Write a manifest record, if this writer still holds the lock (a lease taken over
        while it stalled must not commit; the attached ranks of a job hold none)."""
        if self.lock is not None:
            self.lock.check()
        self.manifest.write(rec)

    def _array_meta(self, path: str) -> dict[str, Any]:
        if path not in self._metas:
            self._metas[path] = json.loads(self.loc.read(array_meta_key(path)))
        return self._metas[path]

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers


def _only_lock(loc: Location) -> bool:
    """Whether the folder holds nothing but our lock and temp files of an interrupted
    creation (anything else makes it foreign, and it is never touched)."""
    return all(name == LOCK_KEY or is_temp_name(name) for name in loc.list(""))


def _clear(loc: Location) -> None:
    for name in loc.list(""):
        if name != LOCK_KEY:
            loc.remove(name)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not keys:
        return "different code version"
    return ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:3])


def _remove_partials(loc: Location) -> None:
    """Delete temp files a killed writer left (zarr's ``*.partial``, our ``.*.tmp``)."""
    for path in loc.fs.find(loc.root):
        if is_temp_name(posixpath.basename(path)):
            loc.fs.rm(path)


def _ensure_arrays(
    loc: Location, chunk_size: int, specs: Sequence[ArraySpec], compressor: str
) -> None:
    """Create every array of ``specs`` that has no metadata document yet (idempotent: a
    crash during creation leaves a group that a rerun completes). The documents are zarr's
    own (its metadata classes, serialised by zarr), written without its asynchronous store
    path: that path cost a dump tens of milliseconds on the critical path."""
    codec = make_compressor(compressor)
    documents = _metadata_documents()
    group = None if documents is not None else _zarr_group(loc)
    for spec in specs:
        # Parent groups first, each idempotently: a crash between writes leaves none missing.
        parts = spec.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not loc.exists(array_meta_key(sub)):
                if documents is None:
                    group.require_group(sub)
                else:
                    loc.write_atomic(array_meta_key(sub), documents.group())
        if loc.exists(array_meta_key(spec.path)):
            continue
        chunks = spec.chunks(chunk_size)
        if documents is None:
            group.create_array(
                spec.path,
                shape=spec.shape,
                chunks=chunks,
                dtype=spec.dtype,
                compressors=codec,
                fill_value=0,
                overwrite=True,
            )
        else:
            loc.remove(spec.path)  # as zarr's overwrite: nothing of an earlier array stays
            loc.write_atomic(
                array_meta_key(spec.path), documents.array(spec.shape, chunks, spec.dtype, codec)
            )


def _zarr_group(loc: Location) -> Any:
    import zarr

    return zarr.open_group(store=loc.zarr_store(read_only=False), mode="r+")


class _Documents:
    """zarr's metadata documents (``zarr.json``) of a group and of an array, made by zarr's
    metadata classes the way ``create_array`` makes them (the same bytes, tested)."""

    def __init__(self) -> None:
        from zarr.core.array import (
            AsyncArray,
            _parse_chunk_encoding_v3,
            _parse_chunk_key_encoding,
        )
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.dtype import parse_dtype
        from zarr.core.group import GroupMetadata

        self._create = AsyncArray._create_metadata_v3
        self._encoding = _parse_chunk_encoding_v3
        self._keys = _parse_chunk_key_encoding(None, zarr_format=3)
        self._dtype = parse_dtype
        self._prototype = default_buffer_prototype()
        self._group = self._bytes(GroupMetadata(zarr_format=3))

    def _bytes(self, meta: Any) -> bytes:
        return bytes(meta.to_buffer_dict(self._prototype)["zarr.json"].to_bytes())

    def group(self) -> bytes:
        return self._group

    def array(
        self, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, codec: Any
    ) -> bytes:
        zdtype = self._dtype(dtype, zarr_format=3)
        filters, serializer, compressors = self._encoding(
            compressors=codec, filters="auto", serializer="auto", dtype=zdtype
        )
        meta = self._create(
            shape=shape,
            dtype=zdtype,
            fill_value=0,
            chunk_shape=chunks,
            chunk_key_encoding=self._keys,
            codecs=(*filters, serializer, *compressors),
            dimension_names=None,
            attributes=None,
        )
        return self._bytes(meta)


def _metadata_documents() -> _Documents | None:
    """zarr's document builders, or None where this zarr lacks them (a version whose
    internals differ: arrays are then created through ``create_array``)."""
    try:
        documents = _Documents()
        documents.array((1,), (1,), "float32", None)  # the builders take these arguments
    except (ImportError, AttributeError, TypeError):
        return None
    return documents


# --------------------------------------------------------------------------- metadata updates


def _update(url: str, change: Callable[[CacheMeta], CacheMeta], owner: str) -> CacheMeta:
    """Apply ``change`` to the root metadata under the write lock; only the root
    ``zarr.json`` changes, rewritten atomically (temp file + rename where the backend
    allows)."""
    loc = resolve(url)
    missing = f"{loc.url} is not a softlabels cache; nothing was written"
    if read_root_attrs(loc) is None:  # before locking: taking the lock would create the folder
        raise CacheNotFoundError(missing)
    with CacheLock(loc, owner=owner) as lock:
        attrs = read_root_attrs(loc)
        if attrs is None:
            raise CacheNotFoundError(missing)
        meta = change(parse_meta(loc, attrs))
        lock.check()
        rewrite_root_attrs(loc, meta.to_dict())
    return meta


def update_meta(url: str, key: str, value: Any, *, owner: str = "update") -> dict[str, Any]:
    """Set ``key`` of the ``softlabels`` root attribute to ``value`` under the write lock.

    ``value`` must be JSON-serialisable and valid for ``key`` (a malformed value raises a
    CacheError naming the key, and nothing is written). Returns the updated attribute.
    """

    def change(meta: CacheMeta) -> CacheMeta:
        return CacheMeta.from_dict(meta.to_dict() | {key: value})

    return _update(url, change, owner).to_dict()


def set_tune_tau(url: str, tune_tau: TuneTau | None, *, owner: str = "tune-tau") -> CacheMeta:
    """Store a tune-tau result as the latest and as its teacher's (``tune_tau_by_teacher``);
    with None, clear the latest. Returns the metadata."""

    def change(meta: CacheMeta) -> CacheMeta:
        if tune_tau is None:
            return meta.updated(tune_tau=None)
        by_teacher = dict(meta.tune_tau_by_teacher or {})
        by_teacher[tune_tau.teacher or ""] = tune_tau
        return meta.updated(tune_tau=tune_tau, tune_tau_by_teacher=by_teacher)

    return _update(url, change, owner)


def add_teacher(
    url: str,
    name: str,
    info: TeacherInfo | Mapping[str, Any],
    rows: dict[str, np.ndarray],
    static: dict[str, np.ndarray] | None = None,
    *,
    per_chunk: dict[str, np.ndarray] | None = None,
    replace: bool = False,
    break_lock: bool = False,
    compressor: str = "zstd",
) -> None:
    """Add a teacher to a complete cache: row arrays ``teachers/<name>/<key>`` ([N, ...]),
    optional static arrays, with their own manifest records (``*+<name>.json``).

    ``rows`` and ``static`` are keyed by teacher array (``logits``, ``features``, or a sparse
    teacher's ``topk/values``, ``topk/indices``, ``topk/rest``; ``classifier/weight``,
    ``classifier/bias``, ``lws_scale``); ``per_chunk`` holds arrays of one row per chunk
    (``topk/error``, ``[num_chunks, ...]``), committed with their chunks. The teacher appears
    in the root attributes only after all its chunks are committed, so a reader never sees
    half of it; a sparse teacher makes the cache format 2. ``replace`` first removes a
    teacher of that name.
    """
    loc = resolve(url)
    if read_root_attrs(loc) is None:
        raise CacheNotFoundError(f"{loc.url} is not a softlabels cache; nothing was written")
    record = (
        info
        if isinstance(info, TeacherInfo)
        else TeacherInfo.from_dict(info, f"{ROOT_ATTR}.teachers.{name}")
    )
    static = static or {}
    per_chunk = per_chunk or {}
    lock = CacheLock(loc, break_stale=break_lock, owner="add-teacher")
    lock.acquire()
    try:
        attrs = read_root_attrs(loc)
        assert attrs is not None
        meta = parse_meta(loc, attrs)
        if name in meta.teachers:
            if not replace:
                raise CacheExistsError(
                    f"{loc.url} already has a teacher {name!r}; use --overwrite to replace it"
                )
            kept = {k: v for k, v in meta.teachers.items() if k != name}
            meta = meta.updated(teachers=kept, format=format_for(kept, meta.views))
            rewrite_root_attrs(loc, meta.to_dict())
        # Leftovers of an earlier (maybe interrupted) add of this name.
        loc.remove(teacher_root(name))
        for rec in loc.list(MANIFEST):
            parsed = parse_record_name(rec)
            if parsed is not None and parsed.part == name:
                loc.remove(f"{MANIFEST}/{rec}")
        n = meta.N
        specs = []
        for key, arr in rows.items():
            if arr.shape[0] != n:
                raise ValueError(f"Expected {n} rows for {key}, got {arr.shape[0]}")
            specs.append(ArraySpec(teacher_array(name, key), tuple(arr.shape), str(arr.dtype)))
        for key, arr in per_chunk.items():
            if arr.shape[0] != meta.num_chunks:
                raise ValueError(f"Expected {meta.num_chunks} rows for {key}, got {arr.shape[0]}")
            path = teacher_array(name, key)
            specs.append(ArraySpec(path, tuple(arr.shape), str(arr.dtype), per_chunk=True))
        for key, arr in static.items():
            specs.append(
                ArraySpec(teacher_array(name, key), tuple(arr.shape), str(arr.dtype), by_row=False)
            )
        _ensure_arrays(loc, meta.chunk_size, specs, compressor)
        writer = CacheWriter(loc, lock, meta, specs)
        # The static record also covers the metadata documents of the new row arrays.
        writer.write_static({teacher_array(name, k): v for k, v in static.items()}, part=name)
        for chunk in range(writer.num_chunks):
            start, stop = writer.rows(chunk)
            data = {teacher_array(name, k): v[start:stop] for k, v in rows.items()}
            data |= {teacher_array(name, k): v[chunk : chunk + 1] for k, v in per_chunk.items()}
            writer.write_chunk(chunk, data, part=name)
        # What the teacher has is what was written, whatever ``info`` said.
        record = record.updated(
            features=FEATURES in rows,
            classifier=CLASSIFIER_WEIGHT in static,
            storage="topk" if TOPK_VALUES in rows else "dense",
            topk=record.topk if TOPK_VALUES in rows else None,
        )
        teachers = {**meta.teachers, name: record}
        meta = meta.updated(teachers=teachers, format=format_for(teachers, meta.views))
        lock.check()
        rewrite_root_attrs(loc, meta.to_dict())
    finally:
        lock.release()
