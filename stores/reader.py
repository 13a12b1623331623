"""Reading a cache: :class:`Cache` (the read-only view), :class:`TeacherArrays` (one
teacher) and :class:`ArrayReader` (verified chunk-wise reads of one array).

Verified reads check every file against the manifest before decoding it: an array's
metadata document, each row chunk, each array stored whole. Lazy zarr arrays
(``cache.teacher(name).logits``) read unverified, for slicing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from softlabels.stores._codec import decode_chunk
from softlabels.stores._fs import resolve
from softlabels.stores._root import parse_meta, read_root_attrs
from softlabels.stores.errors import (
    CacheError,
    CacheNotFoundError,
    ChecksumMismatchError,
    IncompleteCacheError,
    UsageError,
)
from softlabels.stores.manifest import Manifest, sha256
from softlabels.stores.schema import (
    CLASSES_TABLE,
    CLASSIFIER_BIAS,
    CLASSIFIER_WEIGHT,
    FEATURES,
    FORMAT_VERSIONS,
    LABELS,
    LOGITS,
    LWS_SCALE,
    MIX_ARRAYS,
    MIX_BOX,
    MIX_LAM,
    MIX_PARTNER,
    MIX_RULE,
    MIX_RULE_VERSION,
    SAMPLE_ID,
    SAMPLES_TABLE,
    TEACHER_CHUNK_ARRAYS,
    TEACHER_ROW_ARRAYS,
    TEACHER_STATIC_ARRAYS,
    TOPK_ERROR,
    TOPK_INDICES,
    TOPK_PROFILE,
    TOPK_REST,
    TOPK_VALUES,
    VIEW_SEEDS,
    CacheMeta,
    DatasetInfo,
    MixingInfo,
    TeacherInfo,
    TuneTau,
    ViewsInfo,
    array_meta_key,
    chunk_key,
    format_of,
    teacher_array,
    teacher_root,
)
from softlabels.stores.tables import read_table

if TYPE_CHECKING:
    from softlabels.stores.verify import Problem

__all__ = ["ArrayReader", "Cache", "TeacherArrays"]

# The views of a cache whose metadata has none (caches written by the store layer alone).
_CLEAN = ViewsInfo(mode="clean", count=0)


@dataclass
class ArrayReader:
    """Verified reads of one array of a cache: chunk-wise for a row-chunked array,
    :meth:`read_static` for an array stored whole."""

    cache: Cache
    path: str
    _meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        key = array_meta_key(self.path)
        url = self.cache.loc.url
        try:
            raw = self.cache.loc.read(key)
        except FileNotFoundError:
            raise ChecksumMismatchError(
                f"{url}: the metadata of {self.path} is missing ({key}); run `softlabels verify`"
            ) from None
        entry = self.cache.manifest.entry(key)
        if entry is None:  # its static record is gone or damaged: the document is unchecked
            raise ChecksumMismatchError(
                f"{url}: the metadata of {self.path} was never committed ({key}); "
                "run `softlabels verify` and redo the dump"
            )
        try:
            if sha256(raw) != entry.sha256:
                raise ValueError("checksum mismatch")
            self._meta = json.loads(raw)
            self._meta["shape"], self._meta["codecs"]
        except (ValueError, KeyError, TypeError):
            raise ChecksumMismatchError(
                f"{url}: the metadata of {self.path} is damaged ({key}); "
                "run `softlabels verify` and redo the dump"
            ) from None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._meta["shape"])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self._meta["data_type"])

    @property
    def chunk_shape(self) -> tuple[int, ...]:
        return tuple(self._meta["chunk_grid"]["configuration"]["chunk_shape"])

    @property
    def chunk_rows(self) -> int:
        return int(self.chunk_shape[0])

    @property
    def num_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk_rows)

    def _read(self, key: str, what: str, sha: str | None) -> bytes:
        """The bytes of ``key``, checked against ``sha`` when given."""
        url = self.cache.loc.url
        try:
            raw = self.cache.loc.read(key)
        except FileNotFoundError as exc:
            raise ChecksumMismatchError(
                f"{url}: {what} is missing ({key}); run `softlabels verify` and redo the dump"
            ) from exc
        if sha is not None and sha256(raw) != sha:
            raise ChecksumMismatchError(
                f"{url}: {what} is corrupt (checksum mismatch at {key}); "
                "run `softlabels verify` and redo the dump"
            )
        return raw

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
        raw = self._read(key, f"chunk {chunk} of {self.path}", entry.sha256 if verify else None)
        chunk_shape = (self.chunk_rows, *self.shape[1:])
        out = decode_chunk(raw, self._meta, chunk_shape)
        if out is None:  # a codec chain we do not decode by hand: let zarr read it
            return np.asarray(self.cache.group[self.path][start:stop])
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

    def read_static(self) -> np.ndarray:
        """All of an array stored whole (one chunk), checked against its static record."""
        entry = self.cache.manifest.entry(self.path)
        if entry is None:
            raise ChecksumMismatchError(
                f"{self.cache.loc.url}: {self.path} was never committed; "
                "run `softlabels verify` and redo the dump"
            )
        raw = self._read(entry.key, self.path, entry.sha256)
        out = decode_chunk(raw, self._meta, self.chunk_shape)
        if out is None:
            return np.asarray(self.cache.group[self.path][...])
        return out[tuple(slice(0, s) for s in self.shape)]


@dataclass
class TeacherArrays:
    """One teacher's arrays: lazy zarr arrays plus verified readers."""

    cache: Cache
    name: str

    @property
    def info(self) -> TeacherInfo:
        """The teacher's metadata record (``info["features"]``-style reads still work)."""
        return self.cache.metadata.teachers[self.name]

    @property
    def storage(self) -> str:
        """``"dense"`` (a logits array) or ``"topk"`` (the K largest logits per view)."""
        return "topk" if self.info.sparse else "dense"

    @property
    def k(self) -> int | None:
        """K of a sparse teacher (logits kept per view); None for a dense one."""
        return self.info.topk.k if self.info.topk is not None else None

    def _require_dense(self, what: str) -> None:
        if self.info.sparse:
            raise UsageError(
                f"teacher {self.name!r} of {self.cache.url} is stored top-{self.k} (sparse): "
                f"{what} needs its full logits, which were not kept; use "
                ".dense_logits(rows) for the rebuilt view, or dump the teacher without --topk"
            )

    @property
    def logits(self) -> Any:
        """Lazy zarr array [N, V, C] (slicing reads only the chunks needed); dense teachers
        only (a sparse one has :meth:`dense_logits`)."""
        self._require_dense("the lazy logits array")
        return self.cache.group[teacher_array(self.name, LOGITS)]

    @property
    def dense_shape(self) -> tuple[int, int, int]:
        """[N, V, C]: the shape of the logits, or of a sparse teacher's dense view."""
        meta = self.cache.metadata
        return meta.N, meta.V, meta.C

    def check_rule(self) -> None:
        """Refuse (one line) top-k outputs stored under a rule this version cannot rebuild."""
        from softlabels.stores.topk import check_rule

        topk = self.info.topk
        if topk is None:  # dense: nothing to rebuild
            return
        check_rule(topk.rule, topk.rule_version, f"teacher {self.name!r} of {self.cache.url}")

    def rest_profile(self) -> np.ndarray | None:
        """A sparse teacher's rest profile (``topk/profile``, verified; read once): float32
        ``[C, C]`` or ``[1, C]``; None for a dense teacher or one of the equal-rest rule."""
        topk = self.info.topk
        if topk is None or topk.profile is None:
            return None
        key = teacher_array(self.name, TOPK_PROFILE)
        if key not in self.cache._statics:
            self.cache._statics[key] = self.read_static(TOPK_PROFILE)
        return self.cache._statics[key]

    def rebuild(
        self, values: np.ndarray, indices: np.ndarray, rest: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """The rule's dense view (float32 ``[len(rows), V, C]``) of stored top-k arrays of
        ``rows``: each pair's rest shaped by the profile of its label (and of its mixed
        view's partner), stores/topk.py."""
        from softlabels.stores.topk import dense_view, pair_profiles

        table = self.rest_profile()
        c = self.cache.num_classes
        if table is None:
            return dense_view(values, indices, rest, c)
        return dense_view(
            values, indices, rest, c, pair_profiles(table, *self.cache.pair_labels(rows))
        )

    def dense_chunks(self, *, verify: bool = True) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, logits [rows, V, C]) for every chunk in order, read once (checksums
        verified): the stored logits, or a sparse teacher's dense view (float32) whose
        softmax at any temperature is the rule's rebuilt distribution (stores/topk.py)."""
        if not self.info.sparse:
            yield from self.reader(LOGITS).iter_chunks(verify=verify)
            return
        self.check_rule()
        parts = [self.reader(w) for w in (TOPK_VALUES, TOPK_INDICES, TOPK_REST)]
        for (start, stop, values), (_, _, ids), (_, _, rest) in zip(
            *(r.iter_chunks(verify=verify) for r in parts), strict=True
        ):
            yield start, stop, self.rebuild(values, ids, rest, np.arange(start, stop))

    def read_rows(
        self, what: str, rows: Sequence[int] | np.ndarray, *, verify: bool = True
    ) -> np.ndarray:
        """Array ``what`` (:meth:`reader`'s names) at the chosen rows ``[len(rows), ...]``,
        from the chunks that hold them, each read once (checksums verified)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        reader = self.reader(what)
        n = reader.shape[0]
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise UsageError(f"Expected rows in [0, {n}), got {rows.min()} ... {rows.max()}")
        out = np.empty((len(rows), *reader.shape[1:]), dtype=reader.dtype)
        size = reader.chunk_rows
        for chunk in np.unique(rows // size):
            at = np.flatnonzero(rows // size == chunk)
            out[at] = reader.read_chunk(int(chunk), verify=verify)[rows[at] - chunk * size]
        return out

    def dense_logits(self, rows: Sequence[int] | np.ndarray, *, verify: bool = True) -> np.ndarray:
        """float32 [len(rows), V, C] of the chosen rows, from the chunks that hold them
        (checksums verified): the stored logits, or a sparse teacher's dense view (its
        softmax at any temperature is the rule's rebuilt distribution)."""
        if not self.info.sparse:
            return self.read_rows(LOGITS, rows, verify=verify).astype(np.float32)
        self.check_rule()
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        parts = (
            self.read_rows(w, rows, verify=verify) for w in (TOPK_VALUES, TOPK_INDICES, TOPK_REST)
        )
        return self.rebuild(*parts, rows)

    def topk_error(self) -> dict[str, Any] | None:
        """A sparse teacher's error measured at dump time (``topk/error``, verified): the
        columns, each chunk's row, and the summary over chunks (means weighted by rows, max
        of the maxima); None for a dense teacher."""
        topk = self.info.topk
        if topk is None:
            return None
        from softlabels.stores.topk import error_summary

        errors = self.reader(TOPK_ERROR).read_all()
        cs, n = self.cache.chunk_size, self.cache.num_samples
        rows = [min(n, (c + 1) * cs) - c * cs for c in range(len(errors))]
        columns = list(topk.error_columns)
        return {
            "columns": columns,
            "chunks": [[float(x) for x in row] for row in errors],
            "summary": error_summary(errors, rows, columns),
        }

    @property
    def features(self) -> Any | None:
        path = teacher_array(self.name, FEATURES)
        return self.cache.group[path] if self.info.features else None

    @property
    def classifier(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The final layer (weight [C, D], bias [C]), checksums verified; None if not stored."""
        if not self.info.classifier:
            return None
        return self.read_static(CLASSIFIER_WEIGHT), self.read_static(CLASSIFIER_BIAS)

    @property
    def lws_scale(self) -> np.ndarray | None:
        """The LWS scale [C] of an LWS-calibrated teacher, verified; None for others."""
        path = teacher_array(self.name, LWS_SCALE)
        if not self.info.lws_scale and self.cache.manifest.entry(path) is None:
            return None
        return self.read_static(LWS_SCALE)

    def reader(self, what: str = LOGITS) -> ArrayReader:
        """Verified reads of a row-chunked array (:data:`LOGITS` or :data:`FEATURES`; a sparse
        teacher's ``topk/*`` arrays)."""
        arrays = (*TEACHER_ROW_ARRAYS, *TEACHER_CHUNK_ARRAYS)
        if what not in arrays:
            raise UsageError(f"Expected one of {', '.join(arrays)}, got {what!r}")
        if what == LOGITS:
            self._require_dense("reading the logits array")
        return ArrayReader(self.cache, teacher_array(self.name, what))

    def read_static(self, what: str) -> np.ndarray:
        """A verified array stored whole (:data:`CLASSIFIER_WEIGHT`, ...)."""
        if what not in TEACHER_STATIC_ARRAYS:
            raise UsageError(f"Expected {', '.join(TEACHER_STATIC_ARRAYS)}, got {what!r}")
        return ArrayReader(self.cache, teacher_array(self.name, what)).read_static()

    @property
    def row_arrays(self) -> list[str]:
        """Paths of the teacher's arrays committed chunk by chunk (a sparse teacher's
        ``topk/error`` too: one row per chunk)."""
        sparse = (TOPK_VALUES, TOPK_INDICES, TOPK_REST, *TEACHER_CHUNK_ARRAYS)
        out = [teacher_array(self.name, w) for w in (sparse if self.info.sparse else (LOGITS,))]
        if self.info.features:
            out.append(teacher_array(self.name, FEATURES))
        return out

    def static_arrays(self) -> list[str]:
        """Paths of the arrays stored whole that the teacher has: the classifier's weight,
        and its bias where its metadata document is there (a teacher added with a weight
        alone has none); the LWS scale of an LWS teacher (or where its document is there)."""
        loc = self.cache.loc
        out: list[str] = []
        if self.info.classifier:
            out.append(teacher_array(self.name, CLASSIFIER_WEIGHT))
            bias = teacher_array(self.name, CLASSIFIER_BIAS)
            if loc.exists(array_meta_key(bias)):
                out.append(bias)
        scale = teacher_array(self.name, LWS_SCALE)
        if self.info.lws_scale or loc.exists(array_meta_key(scale)):
            out.append(scale)
        if self.info.topk is not None and self.info.topk.profile is not None:
            out.append(teacher_array(self.name, TOPK_PROFILE))
        return out


class Cache:
    """Read-only view of a softlabels cache (a local folder or an fsspec URL).

    :attr:`metadata` is the root metadata as a record; :attr:`meta` the same as the plain
    dict that was read (kept for existing callers).
    """

    def __init__(self, path_or_url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import zarr

        self.loc = resolve(path_or_url, storage_options)
        attrs = read_root_attrs(self.loc)
        if attrs is None:
            what = "does not exist" if not self.loc.exists() else "is not a softlabels cache"
            raise CacheNotFoundError(f"{self.loc.url} {what}; create one with `softlabels dump`")
        if format_of(attrs) not in FORMAT_VERSIONS:
            raise CacheError(
                f"{self.loc.url} has cache format {format_of(attrs)}; this softlabels reads "
                f"formats {', '.join(map(str, FORMAT_VERSIONS[:-1]))} and {FORMAT_VERSIONS[-1]}: "
                "upgrade softlabels"
            )
        self.meta: dict[str, Any] = attrs
        self.metadata: CacheMeta = parse_meta(self.loc, attrs)
        self.group = zarr.open_group(store=self.loc.zarr_store(read_only=True), mode="r")
        self.manifest = Manifest(self.loc)
        self._labels: np.ndarray | None = None
        self._mix_labels: tuple[np.ndarray, np.ndarray] | None = None
        self._statics: dict[str, np.ndarray] = {}  # static arrays read once (rest profiles)

    def __repr__(self) -> str:
        return f"Cache({self.loc.url!r}, N={self.num_samples}, C={self.num_classes}, V={self.num_views}, teachers={self.teacher_names})"

    # -- shape and metadata
    @property
    def url(self) -> str:
        return self.loc.url

    @property
    def num_samples(self) -> int:
        return self.metadata.N

    @property
    def num_classes(self) -> int:
        return self.metadata.C

    @property
    def num_views(self) -> int:
        return self.metadata.V

    @property
    def chunk_size(self) -> int:
        return self.metadata.chunk_size

    @property
    def num_chunks(self) -> int:
        return self.metadata.num_chunks

    @property
    def config_key(self) -> str:
        return self.metadata.config_key

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata.class_names)

    @property
    def teacher_names(self) -> list[str]:
        return list(self.metadata.teachers)

    @property
    def dataset(self) -> DatasetInfo:
        """What the cache was made from (``dataset["split"]``-style reads still work)."""
        return self.metadata.dataset

    @property
    def fingerprint(self) -> str:
        return self.metadata.dataset.fingerprint

    @property
    def views(self) -> ViewsInfo:
        """The views of every row (one clean view when the metadata records none)."""
        return self.metadata.views or _CLEAN

    @property
    def tune_tau(self) -> TuneTau | None:
        """The latest result ``tune-tau`` stored, if it ran."""
        return self.metadata.tune_tau

    def tune_tau_for(self, teacher: str) -> TuneTau | None:
        """The tune-tau result of ``teacher`` (or an ensemble ``"a+b"``), if any. A cache
        from before per-teacher results holds one, which counts for its own teacher only."""
        by_teacher = self.metadata.tune_tau_by_teacher or {}
        if teacher in by_teacher:
            return by_teacher[teacher]
        latest = self.metadata.tune_tau
        return latest if latest is not None and latest.teacher == teacher else None

    @property
    def tune_tau_teachers(self) -> list[str]:
        """The teachers (and ensembles) with a stored tune-tau result."""
        found = set((self.metadata.tune_tau_by_teacher or {}).keys())
        if self.metadata.tune_tau is not None and self.metadata.tune_tau.teacher:
            found.add(self.metadata.tune_tau.teacher)
        return sorted(found)

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = ArrayReader(self, LABELS).read_all().astype(np.int64)
        return self._labels

    @property
    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    @property
    def view_seeds(self) -> Any:
        """Lazy zarr array [N, V] of the view seeds (unverified: see :meth:`read_view_seeds`)."""
        return self.group[VIEW_SEEDS]

    def read_view_seeds(self) -> np.ndarray:
        """All view seeds [N, V], every chunk's checksum verified."""
        return ArrayReader(self, VIEW_SEEDS).read_all()

    @property
    def mixing(self) -> MixingInfo | None:
        """The recipe of the mixed views (None: no view is mixed)."""
        return self.views.mixing

    def check_mix_rule(self) -> None:
        """Refuse mixed views drawn by a rule this version does not know (the online twin
        of such a cache would draw other mixes)."""
        info = self.mixing
        if info is not None and (info.rule, info.rule_version) != (MIX_RULE, MIX_RULE_VERSION):
            raise UsageError(
                f"Expected mixed views drawn by rule {MIX_RULE!r} version {MIX_RULE_VERSION}, "
                f"got {info.rule!r} version {info.rule_version} in {self.url}; upgrade "
                "softlabels or dump the cache again"
            )

    def read_mix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(partner [N, V], lam [N, V], box [N, V, 4])`` of the mixed views, every chunk's
        checksum verified; None for a cache without mixed views."""
        if self.mixing is None:
            return None
        self.check_mix_rule()
        partner, lam, box = (
            ArrayReader(self, p).read_all() for p in (MIX_PARTNER, MIX_LAM, MIX_BOX)
        )
        return partner, lam, box

    def pair_labels(
        self, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """What a pair's rest profile depends on, for ``rows``: their labels ``[rows, 1]``
        and, for mixed views, the partners' labels and lam ``[rows, V]`` (else None)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        own = self.labels[rows][:, None]
        if self.mixing is None:
            return own, None, None
        partner, lam = self.mix_labels()
        return own, partner[rows], lam[rows]

    def mix_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """The mixed views' partner labels (int64; a view not mixed: its own row's) and lam
        ``[N, V]`` (verified, read once); a cache without mixed views has none."""
        if self._mix_labels is None:
            mix = self.read_mix()
            if mix is None:
                raise UsageError(f"{self.url} has no mixed views")
            partner, lam, _box = mix
            rows = np.arange(len(partner))[:, None]
            self._mix_labels = (self.labels[np.where(partner >= 0, partner, rows)], lam)
        return self._mix_labels

    def labels_reader(self) -> ArrayReader:
        """Verified chunk-wise reads of the labels (for streaming passes)."""
        return ArrayReader(self, LABELS)

    def teacher(self, name: str) -> TeacherArrays:
        if name not in self.metadata.teachers:
            raise UsageError(
                f"Expected a teacher of this cache ({', '.join(self.teacher_names)}), got {name!r}"
            )
        return TeacherArrays(self, name)

    def teacher_bytes_on_disk(self, name: str) -> int:
        return self.nbytes_on_disk(teacher_root(name))

    def samples(self) -> Any:
        return read_table(self.loc, SAMPLES_TABLE)

    def classes(self) -> Any:
        return read_table(self.loc, CLASSES_TABLE)

    def sample_ids(self, rows: Sequence[int] | np.ndarray | None = None) -> list[str]:
        """The stable ids of the samples of ``rows`` (all rows by default)."""
        ids = self.samples().column(SAMPLE_ID)
        if rows is None:
            return [str(x) for x in ids.to_pylist()]
        return [str(x) for x in ids.take(np.asarray(rows, dtype=np.int64)).to_pylist()]

    # -- integrity
    def row_arrays(self, teacher: str | None = None) -> list[str]:
        """Row-chunked arrays of the cache (or of one teacher plus the base arrays)."""
        names = self.teacher_names if teacher is None else [teacher]
        out = [LABELS, VIEW_SEEDS, *(MIX_ARRAYS if self.mixing is not None else ())]
        for t in names:
            out.extend(self.teacher(t).row_arrays)
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

    def labels_complete(self) -> bool:
        """Whether every chunk of the labels is committed."""
        return not self.missing_chunks().get(LABELS)

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
        from softlabels.stores.verify import verify_cache

        return verify_cache(self, teacher=teacher)

    def require_sound(self, teacher: str | None = None) -> None:
        """Refuse a damaged or incomplete cache with a one-line error naming the first problem."""
        from softlabels.stores.verify import require_sound

        require_sound(self, teacher=teacher)

    def nbytes_on_disk(self, prefix: str = "") -> int:
        return self.loc.du(prefix)
