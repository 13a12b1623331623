"""The cache format, versions 1 to 3, in one place (2: mixed views and equal-rest sparse
teachers; 3: sparse teachers with a rest profile).

Every other module names the parts of a cache through this one:

* the format version and the root attribute (``zarr.json`` attributes, key ``softlabels``);
* array paths (:data:`LABELS`, :data:`VIEW_SEEDS`, :func:`teacher_array`; a sparse
  teacher's ``topk/*`` arrays, whose rebuild rule is :mod:`~softlabels.stores.topk`) and the store
  keys of their files (:func:`array_meta_key`, :func:`chunk_key`);
* the Parquet tables and their columns (:data:`TABLE_COLUMNS`, :func:`table_schema`);
* manifest record names (:func:`record_name`, :func:`parse_record_name`);
* the root metadata as frozen records that validate themselves (:class:`CacheMeta` with
  :class:`DatasetInfo`, :class:`TeacherInfo`, :class:`TopKInfo`, :class:`Calibration`, :class:`ViewsInfo`,
  :class:`TuneTau`), each with ``to_dict``/``from_dict``.

``from_dict`` raises a one-line :class:`~softlabels.stores.errors.CacheError` naming the key
of malformed metadata. ``from_dict(d).to_dict() == d``, key order included: keys this
version does not know are kept in ``extra`` and written back where they were, and keys a
writer left out stay out. Records also answer the dict-style reads of the plain metadata
(``info["features"]``, ``info.get("calibration")``, ``info | {...}``), which return what
``to_dict()`` holds; new code reads attributes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from softlabels.stores.errors import CacheError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ARRAY_PATHS",
    "CLASSES_COLUMNS",
    "CLASSES_TABLE",
    "CLASSIFIER_BIAS",
    "CLASSIFIER_WEIGHT",
    "DENSE_FORMAT_VERSION",
    "FEATURES",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "LABELS",
    "LOGITS",
    "LWS_SCALE",
    "MANIFEST",
    "MIX_ARRAYS",
    "MIX_BOX",
    "MIX_BOX_UNUSED",
    "MIX_LAM",
    "MIX_PARTNER",
    "MIX_RULE",
    "MIX_RULE_VERSION",
    "RECORD_NAMES",
    "ROOT_ATTR",
    "ROOT_DOC",
    "SAMPLES_COLUMNS",
    "SAMPLES_TABLE",
    "SAMPLE_ID",
    "STORAGES",
    "TABLES",
    "TABLE_COLUMNS",
    "TEACHERS",
    "TEACHER_CHUNK_ARRAYS",
    "TEACHER_ROW_ARRAYS",
    "TEACHER_STATIC_ARRAYS",
    "TOPK_ERROR",
    "TOPK_INDICES",
    "TOPK_PROFILE",
    "TOPK_REST",
    "TOPK_VALUES",
    "VIEW_SEEDS",
    "CacheMeta",
    "Calibration",
    "DatasetInfo",
    "MixingInfo",
    "RecordName",
    "TauChoice",
    "TeacherInfo",
    "TopKInfo",
    "TuneTau",
    "ViewsInfo",
    "array_meta_key",
    "attribute_keys",
    "chunk_key",
    "classes_table",
    "config_of",
    "format_for",
    "format_of",
    "is_array_meta_key",
    "parse_record_name",
    "record_name",
    "samples_table",
    "table_schema",
    "teacher_array",
    "teacher_root",
]

# --------------------------------------------------------------------------- version, root

# 2: sparse (top-k) teachers and mixed (Mixup/CutMix) views. A cache whose teachers are all
# dense and whose views are not mixed is still written as 1, so a reader of format 1 reads
# it; one holding a sparse teacher or mixed views is 2, which that reader refuses in one line
# (it reads only its own format), as this one refuses a format above 2.
# 3: a sparse teacher stored under the rest-profile rule (``label-profile`` v2, its
# ``topk/profile`` array and two rest statistics), which a reader of format 2 could not
# rebuild: it refuses format 3 in one line.
FORMAT_VERSION = 3  # the newest format: a sparse teacher with a rest profile
MIXED_FORMAT_VERSION = 2  # mixed views, or sparse teachers of the equal-rest rule (v1)
DENSE_FORMAT_VERSION = 1  # written when every teacher is dense and no view is mixed
FORMAT_VERSIONS = (DENSE_FORMAT_VERSION, MIXED_FORMAT_VERSION, FORMAT_VERSION)  # what this reads
ROOT_DOC = "zarr.json"  # the root group's document; its attributes hold the metadata
ROOT_ATTR = "softlabels"  # the attribute of the root document that holds CacheMeta

# --------------------------------------------------------------------------- array paths

LABELS = "labels"  # int32 [N]
VIEW_SEEDS = "views/seed"  # uint64 [N, V]
# Mixed views (format 2, ``views.mixing`` set; the rule is softlabels/data/mixing.py).
MIX_PARTNER = "views/partner"  # int32 [N, V]: partner row of view v of row i, -1: not mixed
MIX_LAM = "views/lam"  # float32 [N, V]: weight of row i's own input (1 when not mixed)
MIX_BOX = "views/box"  # int32 [N, V, 4]: CutMix box (y0, y1, x0, x1), half-open
MIX_BOX_UNUSED = -1  # box entries of a view that is not CutMix, and y0, y1 of 1-D signals
MIX_ARRAYS = (MIX_PARTNER, MIX_LAM, MIX_BOX)
MIX_RULE = "partner-from-view-seed"  # how they are drawn (softlabels/data/mixing.py) ...
MIX_RULE_VERSION = 1  # ... and its version: bump when the same seeds give other mixes
TEACHERS = "teachers"  # group of the teachers: teachers/<name>/...

# The arrays of one teacher, relative to teachers/<name>/.
LOGITS = "logits"  # float16/float32 [N, V, C], row-chunked
FEATURES = "features"  # float16/float32 [N, V, D], row-chunked (optional)
CLASSIFIER_WEIGHT = "classifier/weight"  # float32 [C, D], stored whole
CLASSIFIER_BIAS = "classifier/bias"  # float32 [C], stored whole
LWS_SCALE = "lws_scale"  # float32 [C], stored whole (LWS-calibrated teachers)
# A sparse teacher (storage "topk") has these instead of LOGITS (METHODS §12, stores/topk.py).
TOPK_VALUES = "topk/values"  # float16/float32 [N, V, K], the K largest logits, descending
TOPK_INDICES = "topk/indices"  # uint16 (C <= 65,536) or int32 [N, V, K], their class ids
TOPK_REST = "topk/rest"  # float32 [N, V, R], statistics of the other C - K logits
TOPK_ERROR = "topk/error"  # float32 [num_chunks, M], the rebuild's error measured per chunk
TOPK_PROFILE = "topk/profile"  # float32 [C, C] or [1, C], stored whole: the rest profile (rule 2)
TEACHER_ROW_ARRAYS = (LOGITS, FEATURES, TOPK_VALUES, TOPK_INDICES, TOPK_REST)
TEACHER_CHUNK_ARRAYS = (TOPK_ERROR,)  # one row per chunk, committed with that chunk
TEACHER_STATIC_ARRAYS = (CLASSIFIER_WEIGHT, CLASSIFIER_BIAS, LWS_SCALE, TOPK_PROFILE)
STORAGES = ("dense", "topk")  # a teacher's logits: LOGITS, or the TOPK_* arrays
BASE_ROW_ARRAYS = (LABELS, VIEW_SEEDS)

# Every array path of a cache, ``<name>`` standing for a teacher's name (the README's table).
ARRAY_PATHS: tuple[str, ...] = (
    *BASE_ROW_ARRAYS,
    *MIX_ARRAYS,
    *(
        f"{TEACHERS}/<name>/{what}"
        for what in (*TEACHER_ROW_ARRAYS, *TEACHER_CHUNK_ARRAYS, *TEACHER_STATIC_ARRAYS)
    ),
)

# Stored teacher names: a dumped name, or ``<source>+<method>`` for a calibrated one.
_TEACHER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def _check_teacher_name(name: object) -> str:
    if not isinstance(name, str) or not _TEACHER_NAME.match(name):
        raise UsageError(
            f"Expected a teacher name of letters, digits, '_', '.', '+', '-', got {name!r}"
        )
    return name


def teacher_root(name: str) -> str:
    """The group of teacher ``name``: ``teachers/<name>``."""
    return f"{TEACHERS}/{_check_teacher_name(name)}"


def teacher_array(name: str, what: str) -> str:
    """The path of array ``what`` (:data:`LOGITS`, :data:`FEATURES`, ...) of teacher ``name``."""
    arrays = (*TEACHER_ROW_ARRAYS, *TEACHER_CHUNK_ARRAYS, *TEACHER_STATIC_ARRAYS)
    if what not in arrays:
        known = ", ".join(arrays)
        raise UsageError(f"Expected a teacher array ({known}), got {what!r}")
    return f"{teacher_root(name)}/{what}"


def array_meta_key(path: str) -> str:
    """The store key of an array's (or group's) metadata document."""
    return f"{path}/{ROOT_DOC}"


def is_array_meta_key(key: str) -> bool:
    return key == ROOT_DOC or key.endswith(f"/{ROOT_DOC}")


def chunk_key(path: str, chunk: int, ndim: int) -> str:
    """The store key of row-chunk ``chunk`` of an array (zarr v3 default keys); chunk 0 of
    an array stored whole is its only file."""
    return "/".join([path, "c", str(chunk), *(["0"] * (ndim - 1))])


# --------------------------------------------------------------------------- tables

SAMPLES_TABLE = "samples.parquet"
CLASSES_TABLE = "classes.parquet"
TABLES = (SAMPLES_TABLE, CLASSES_TABLE)

# Columns and their Arrow types (pyarrow loads on first use: see table_schema).
SAMPLES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("row", "int64"),
    ("sample_id", "string"),  # stable: relative path or source index
    ("label", "int32"),
    ("split", "string"),
)
CLASSES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("class_id", "int32"),
    ("name", "string"),
    ("train_count", "int64"),
    ("shot_group", "string"),
)
TABLE_COLUMNS = {SAMPLES_TABLE: SAMPLES_COLUMNS, CLASSES_TABLE: CLASSES_COLUMNS}
SAMPLE_ID = "sample_id"


def table_schema(table: str) -> pa.Schema:
    """The Arrow schema of ``samples.parquet`` or ``classes.parquet``."""
    import pyarrow as pa

    return pa.schema([(name, pa.type_for_alias(kind)) for name, kind in TABLE_COLUMNS[table]])


def samples_table(sample_ids: Sequence[str], labels: Any, split: str) -> pa.Table:
    """``samples.parquet``: one row per sample, in the cache's row order."""
    import numpy as np
    import pyarrow as pa

    n = len(sample_ids)
    schema = table_schema(SAMPLES_TABLE)
    row, sample_id, label, split_ = schema
    arrays = [
        pa.array(np.arange(n, dtype=np.int64), row.type),
        pa.array(sample_ids, sample_id.type),
        pa.array(np.asarray(labels), label.type),
        pa.repeat(pa.scalar(split, split_.type), n),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def classes_table(class_names: Sequence[str], train_counts: Any, shot_groups: Any) -> pa.Table:
    """``classes.parquet``: one row per class."""
    import pyarrow as pa

    columns = (range(len(class_names)), class_names, train_counts, shot_groups)
    schema = table_schema(CLASSES_TABLE)
    arrays = [pa.array(col, f.type) for col, f in zip(columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


# --------------------------------------------------------------------------- manifest names

MANIFEST = "manifest"  # folder of the records
CHUNK, STATIC, TABLES_RECORD = "chunk", "static", "tables"  # kinds of record
_RECORD = re.compile(
    r"^(chunk-(?P<chunk>\d{6,})|(?P<kind>static|tables))(\+(?P<part>[A-Za-z0-9_.+-]+))?\.json$"
)
# The names a manifest holds (the README's table): ``+<teacher>`` marks a teacher's records.
RECORD_NAMES = (
    f"{MANIFEST}/chunk-<id>[+<teacher>].json",
    f"{MANIFEST}/static[+<teacher>].json",
    f"{MANIFEST}/tables.json",
)


@dataclass(frozen=True)
class RecordName:
    """A manifest record's name, parsed: its kind, its chunk and the teacher it is for.

    ``part`` is None for the records of the dump; ``<teacher>`` for those written when
    that teacher was added (:func:`~softlabels.stores.writer.add_teacher`).
    """

    kind: str  # CHUNK, STATIC or TABLES_RECORD
    chunk: int | None = None
    part: str | None = None

    @property
    def name(self) -> str:
        return record_name(self.kind, self.chunk, self.part)


def record_name(kind: str, chunk: int | None = None, part: str | None = None) -> str:
    """``chunk-000012.json``, ``chunk-000012+a+lws.json``, ``static.json``, ``tables.json``."""
    if kind == CHUNK:
        if chunk is None or chunk < 0:
            raise ValueError(f"Expected a chunk id >= 0 for a chunk record, got {chunk!r}")
        base = f"chunk-{chunk:06d}"
    elif kind in (STATIC, TABLES_RECORD):
        base = kind
    else:
        raise ValueError(f"Expected a record kind chunk, static or tables, got {kind!r}")
    return f"{base}+{part}.json" if part else f"{base}.json"


def parse_record_name(name: str) -> RecordName | None:
    """The parts of a record's file name; None for a name no record has."""
    match = _RECORD.match(name)
    if match is None:
        return None
    chunk = match.group("chunk")
    if chunk is not None:
        return RecordName(CHUNK, int(chunk), match.group("part"))
    return RecordName(match.group("kind"), None, match.group("part"))


# --------------------------------------------------------------------------- records: checks

# A check returns None for a good value, else what was expected ("an integer >= 1").
Check = Callable[[Any], str | None]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(lo: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        ok = _is_int(v) and (lo is None or v >= lo)
        return None if ok else ("an integer" if lo is None else f"an integer >= {lo}")

    return check


def _number(v: Any) -> str | None:
    return None if _is_int(v) or isinstance(v, float) else "a number"


def _positive(v: Any) -> str | None:
    return None if _number(v) is None and v > 0 else "a number > 0"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _object(v: Any) -> str | None:
    return None if isinstance(v, Mapping) else "a JSON object"


def _list_of(item: Check, what: str) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list | tuple) and all(item(x) is None for x in v)
        return None if ok else f"a list of {what}"

    return check


def _one_of(*values: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in values else " or ".join(repr(x) for x in values)

    return check


def _optional(check: Check) -> Check:
    def optional(v: Any) -> str | None:
        problem = check(v) if v is not None else None
        return None if problem is None else f"{problem} or null"

    return optional


def _spec(
    check: Check | None = None,
    *,
    record: type[Record] | None = None,
    each: bool = False,
    optional: bool = False,
    when_set: bool = False,
) -> Any:
    """Field metadata: the value's check, or the record class of a nested record (``each``:
    a JSON object of such records, by name; ``optional``: or null). ``when_set``: a key a
    record built in code writes only when it differs from its default (keys added by a
    newer format, so records without them keep the bytes they had)."""
    return {
        "check": check,
        "record": record,
        "each": each,
        "optional": optional,
        "when_set": when_set,
    }


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _malformed(at: str, expected: str, value: Any) -> CacheError:
    return CacheError(f"Expected {expected} at {at}, got {_show(value)}")


def _plain(value: Any) -> Any:
    """A JSON-ready copy: records as their dicts, tuples as lists."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_R = TypeVar("_R", bound="Record")


# --------------------------------------------------------------------------- records: base


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of the metadata records: frozen dataclasses whose fields are the keys.

    ``extra``: keys this version does not know, as read. ``key_order``: the keys of the
    dict the record was read from, in order (None for a record built in code: then every
    field is written, in field order).
    """

    AT: ClassVar[str] = ""  # where the record sits in the root metadata, for messages

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    key_order: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in self._fields()}
        self._check(values, type(self).__name__)
        for f in self._fields():  # lists become tuples: a record does not change
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if self.key_order is not None:
            object.__setattr__(self, "key_order", tuple(self.key_order))

    # -- fields
    @classmethod
    def _fields(cls) -> tuple[dataclasses.Field[Any], ...]:
        return tuple(f for f in dataclasses.fields(cls) if f.name not in ("extra", "key_order"))

    @classmethod
    def keys_of(cls) -> tuple[str, ...]:
        """The keys of this record, in the order a writer writes them."""
        return tuple(f.name for f in cls._fields())

    @classmethod
    def _check(cls, values: Mapping[str, Any], at: str) -> None:
        for f in cls._fields():
            if f.name not in values:
                continue
            value = values[f.name]
            record, meta = f.metadata.get("record"), f.metadata
            if record is None:
                problem = meta["check"](value) if meta.get("check") else None
            elif value is None:
                problem = None if meta["optional"] else f"a JSON object ({record.__name__})"
            elif meta["each"]:
                ok = isinstance(value, Mapping) and all(
                    isinstance(v, record) for v in value.values()
                )
                problem = None if ok else f"a JSON object of {record.__name__} records"
            else:
                problem = None if isinstance(value, record) else f"a {record.__name__}"
            if problem is not None:
                raise _malformed(f"{at}.{f.name}", problem, value)
        cls._check_together(values, at)

    @classmethod
    def _check_together(cls, values: Mapping[str, Any], at: str) -> None:
        """Checks across keys (none by default)."""

    # -- conversion
    @classmethod
    def from_dict(cls: type[_R], data: Any, at: str | None = None) -> _R:
        """The record of ``data`` (a JSON object); a CacheError naming the key if malformed."""
        at = at or cls.AT or cls.__name__
        if not isinstance(data, Mapping):
            raise _malformed(at, "a JSON object", data)
        values: dict[str, Any] = {}
        for f in cls._fields():
            where = f"{at}.{f.name}"
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise CacheError(f"Expected a key {f.name!r} at {at}, got none")
                continue
            value = data[f.name]
            record = f.metadata.get("record")
            if record is not None and value is not None:
                if f.metadata["each"]:
                    if not isinstance(value, Mapping):
                        raise _malformed(where, "a JSON object", value)
                    value = {k: record.from_dict(v, f"{where}.{k}") for k, v in value.items()}
                else:
                    value = record.from_dict(value, where)
            values[f.name] = value
        cls._check(values, at)
        known = set(cls.keys_of())
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, key_order=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (plain dicts and lists, a fresh copy)."""
        fields_ = self._fields()
        values = {f.name: getattr(self, f.name) for f in fields_}
        order = self.key_order
        if order is None:  # every field, in field order (``when_set`` ones only when set)
            order = tuple(
                f.name
                for f in fields_
                if not (f.metadata.get("when_set") and values[f.name] == _default(f))
            )
        out: dict[str, Any] = {}
        for key in order:
            if key in values:
                out[key] = _plain(values[key])
            elif key in self.extra:
                out[key] = _plain(self.extra[key])
        for f in fields_:  # set in code since it was read: written after the keys read
            if f.name not in out and values[f.name] != _default(f):
                out[f.name] = _plain(values[f.name])
        for key, value in self.extra.items():
            if key not in out:
                out[key] = _plain(value)
        return out

    def updated(self: _R, **changes: Any) -> _R:
        """A copy with ``changes``; keys the original lacked are written after its keys."""
        new = dataclasses.replace(self, **changes)
        if self.key_order is not None:
            order = self.key_order + tuple(k for k in changes if k not in self.key_order)
            object.__setattr__(new, "key_order", order)
        return new

    # -- dict-style reads of the plain metadata (kept for existing callers)
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def keys(self) -> Any:
        return self.to_dict().keys()

    def items(self) -> Any:
        return self.to_dict().items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return self.to_dict() | dict(other)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(Record):
    """``softlabels.dataset``: what the cache was made from."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.dataset"

    spec: str | None = field(default=None, metadata=_spec(_optional(_str)))
    name: str | None = field(default=None, metadata=_spec(_optional(_str)))
    split: str | None = field(default=None, metadata=_spec(_optional(_str)))
    fingerprint: str = field(metadata=_spec(_str))  # hash of sample ids and labels
    family: str | None = field(default=None, metadata=_spec(_optional(_str)))
    recipe: Mapping[str, Any] | None = field(default=None, metadata=_spec(_optional(_object)))
    train_counts: tuple[int, ...] | None = field(
        default=None, metadata=_spec(_optional(_list_of(_int(0), "integers >= 0")))
    )


@dataclass(frozen=True, kw_only=True)
class Calibration(Record):
    """``teachers.<name>.calibration``: how a calibrated teacher was made from its source."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.teachers.<name>.calibration"

    method: str = field(metadata=_spec(_str))  # lws, crt or tau-norm
    source: str | None = field(default=None, metadata=_spec(_optional(_str)))
    epochs: int | None = field(default=None, metadata=_spec(_optional(_int(1))))
    lr: float | None = field(default=None, metadata=_spec(_optional(_number)))
    batch_size: int | None = field(default=None, metadata=_spec(_optional(_int(1))))
    weight_decay: float | None = field(default=None, metadata=_spec(_optional(_number)))
    momentum: float | None = field(default=None, metadata=_spec(_optional(_number)))
    schedule: str | None = field(default=None, metadata=_spec(_optional(_str)))
    sampler: str | None = field(default=None, metadata=_spec(_optional(_str)))
    seed: int | None = field(default=None, metadata=_spec(_optional(_int(0))))
    tau_norm_power: float | None = field(default=None, metadata=_spec(_optional(_number)))
    samples: int | None = field(default=None, metadata=_spec(_optional(_int(0))))
    formula: str | None = field(default=None, metadata=_spec(_optional(_str)))
    losses: tuple[float, ...] | None = field(
        default=None, metadata=_spec(_optional(_list_of(_number, "numbers")))
    )
    evaluation: Mapping[str, Any] | None = field(default=None, metadata=_spec(_optional(_object)))
    softlabels: str | None = field(default=None, metadata=_spec(_optional(_str)))
    keep_bias: bool | None = field(default=None, metadata=_spec(_optional(_bool)))  # tau-norm
    # Where the fit's settings differ from the reference code's (METHODS §8); [] if nowhere.
    differs_from_reference: tuple[str, ...] | None = field(
        default=None, metadata=_spec(_optional(_list_of(_str, "strings")))
    )


@dataclass(frozen=True, kw_only=True)
class TopKInfo(Record):
    """``teachers.<name>.topk``: how a sparse teacher's outputs are stored and rebuilt."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.teachers.<name>.topk"

    k: int = field(metadata=_spec(_int(1)))  # logits kept per (row, view)
    index_dtype: str = field(metadata=_spec(_one_of("uint16", "int32")))
    rest: tuple[str, ...] = field(metadata=_spec(_list_of(_str, "strings")))  # topk/rest columns
    rule: str = field(metadata=_spec(_str))  # the rebuild rule (stores/topk.py)
    rule_version: int = field(metadata=_spec(_int(1)))
    # The rest profile of rule version 2 (topk/profile): "label" ([C, C]) or "class" ([1, C]);
    # None for the equal-rest rule (v1), which has none.
    profile: str | None = field(
        default=None, metadata=_spec(_optional(_one_of("label", "class")), when_set=True)
    )
    error_columns: tuple[str, ...] = field(metadata=_spec(_list_of(_str, "strings")))
    error_taus: tuple[float, ...] = field(metadata=_spec(_list_of(_positive, "numbers > 0")))
    error_dive: tuple[float, ...] = field(metadata=_spec(_list_of(_positive, "numbers > 0")))


@dataclass(frozen=True, kw_only=True)
class TeacherInfo(Record):
    """``teachers.<name>``: one teacher, and which of its arrays the cache holds."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.teachers.<name>"

    order: int | None = field(default=None, metadata=_spec(_optional(_int(0))))
    model: str | None = field(default=None, metadata=_spec(_optional(_str)))  # model spec
    model_id: str | None = field(default=None, metadata=_spec(_optional(_str)))
    arch: Mapping[str, Any] | None = field(default=None, metadata=_spec(_optional(_object)))
    dtype: str | None = field(default=None, metadata=_spec(_optional(_str)))
    features: bool = field(default=False, metadata=_spec(_bool))  # features array stored
    feature_dim: int | None = field(default=None, metadata=_spec(_optional(_int(1))))
    classifier: bool = field(default=False, metadata=_spec(_bool))  # classifier arrays stored
    classifier_kind: str | None = field(default=None, metadata=_spec(_optional(_str)))
    cosine_scale: float | None = field(default=None, metadata=_spec(_optional(_number)))
    calibration: Calibration | None = field(
        default=None, metadata=_spec(record=Calibration, optional=True)
    )
    # "topk": a sparse teacher (its topk/* arrays, described by ``topk``); "dense" or None
    # (caches from before sparse teachers): its logits array.
    storage: str | None = field(default=None, metadata=_spec(_optional(_one_of(*STORAGES))))
    topk: TopKInfo | None = field(default=None, metadata=_spec(record=TopKInfo, optional=True))

    @classmethod
    def _check_together(cls, values: Mapping[str, Any], at: str) -> None:
        sparse = values.get("storage") == "topk"
        if sparse != (values.get("topk") is not None):
            want = "a topk record (storage 'topk')" if sparse else "null (a dense teacher)"
            raise _malformed(f"{at}.topk", want, values.get("topk"))

    @property
    def lws_scale(self) -> bool:
        """Whether the teacher has an LWS scale (``teachers/<name>/lws_scale``)."""
        return self.calibration is not None and self.calibration.method == "lws"

    @property
    def sparse(self) -> bool:
        """Whether the teacher is stored top-k (``teachers/<name>/topk/*``)."""
        return self.storage == "topk"


def _unit(v: Any) -> str | None:
    return None if _number(v) is None and 0 <= v <= 1 else "a number in [0, 1]"


def _non_negative(v: Any) -> str | None:
    return None if _number(v) is None and v >= 0 else "a number >= 0"


@dataclass(frozen=True, kw_only=True)
class MixingInfo(Record):
    """``views.mixing``: the Mixup/CutMix recipe of mixed views (METHODS §13); its arrays are
    :data:`MIX_ARRAYS`, drawn by the rule of :mod:`softlabels.data.mixing`."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.views.mixing"

    mixup: float = field(metadata=_spec(_non_negative))  # Beta(a, a) of Mixup; 0: no Mixup
    cutmix: float = field(metadata=_spec(_non_negative))  # Beta(a, a) of CutMix; 0: no CutMix
    prob: float = field(metadata=_spec(_unit))  # probability that a view is mixed
    rule: str = field(metadata=_spec(_str))  # the drawing rule (data/mixing.py)
    rule_version: int = field(metadata=_spec(_int(1)))

    @classmethod
    def _check_together(cls, values: Mapping[str, Any], at: str) -> None:
        if values.get("mixup") == 0 and values.get("cutmix") == 0:
            raise _malformed(f"{at}.mixup", "mixup or cutmix > 0", values.get("mixup"))


@dataclass(frozen=True, kw_only=True)
class ViewsInfo(Record):
    """``softlabels.views``: the views of every row and how to regenerate them."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.views"

    mode: str = field(metadata=_spec(_one_of("clean", "augmented")))
    count: int = field(metadata=_spec(_int(0)))  # --views: 0 for one clean view
    seed: int | None = field(default=None, metadata=_spec(_optional(_int(0))))
    strength: str | None = field(default=None, metadata=_spec(_optional(_str)))
    recipe: Mapping[str, Any] | None = field(default=None, metadata=_spec(_optional(_object)))
    # epoch: view v is the augmentation epoch v of an online run gives (METHODS §13);
    # random: seeds hashed from (seed, row, view). None for clean caches and caches made
    # before the schedule was recorded (their views are replayed at random).
    schedule: str | None = field(
        default=None, metadata=_spec(_optional(_one_of("epoch", "random")))
    )
    # Mixed views (format 2): the recipe of views/{partner,lam,box}; None (or absent): none.
    # Written only when set: views without mixing keep the keys (so the bytes) they had.
    mixing: MixingInfo | None = field(
        default=None, metadata=_spec(record=MixingInfo, optional=True, when_set=True)
    )


@dataclass(frozen=True, kw_only=True)
class TauChoice(Record):
    """``tune_tau.choice``: the rule of thumb's pick (student temperature and power)."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.tune_tau.choice"

    tau: float = field(metadata=_spec(_positive))
    power: float | None = field(default=None, metadata=_spec(_optional(_positive)))
    tau_eff: float | None = field(default=None, metadata=_spec(_optional(_positive)))
    reason: str | None = field(default=None, metadata=_spec(_optional(_str)))


@dataclass(frozen=True, kw_only=True)
class TuneTau(Record):
    """``softlabels.tune_tau``: what ``tune-tau`` stored for ``distill --tau auto``."""

    AT: ClassVar[str] = f"{ROOT_ATTR}.tune_tau"

    teacher: str | None = field(default=None, metadata=_spec(_optional(_str)))  # or "a+b"
    choice: TauChoice = field(metadata=_spec(record=TauChoice))
    groups: str | None = field(default=None, metadata=_spec(_optional(_str)))
    taus: tuple[float, ...] | None = field(
        default=None, metadata=_spec(_optional(_list_of(_number, "numbers")))
    )
    powers: tuple[float, ...] | None = field(
        default=None, metadata=_spec(_optional(_list_of(_number, "numbers")))
    )


@dataclass(frozen=True, kw_only=True)
class CacheMeta(Record):
    """``softlabels``: the root metadata of a cache."""

    AT: ClassVar[str] = ROOT_ATTR

    format: int = field(metadata=_spec(_one_of(*FORMAT_VERSIONS)))  # type: ignore[arg-type]
    N: int = field(metadata=_spec(_int(0)))
    C: int = field(metadata=_spec(_int(1)))
    V: int = field(metadata=_spec(_int(1)))
    chunk_size: int = field(metadata=_spec(_int(1)))
    config_key: str = field(metadata=_spec(_str))  # hash of what determines the bytes
    config: Mapping[str, Any] = field(default_factory=dict, metadata=_spec(_object))
    dataset: DatasetInfo = field(metadata=_spec(record=DatasetInfo))
    class_names: tuple[str, ...] = field(metadata=_spec(_list_of(_str, "strings")))
    teachers: Mapping[str, TeacherInfo] = field(metadata=_spec(record=TeacherInfo, each=True))
    views: ViewsInfo | None = field(default=None, metadata=_spec(record=ViewsInfo, optional=True))
    created: Mapping[str, Any] | None = field(default=None, metadata=_spec(_optional(_object)))
    tune_tau: TuneTau | None = field(default=None, metadata=_spec(record=TuneTau, optional=True))
    # One tune-tau result per teacher (or ensemble "a+b"): `distill --tau auto` uses its own
    # teacher's. ``tune_tau`` above holds the latest one, as caches before this key did.
    tune_tau_by_teacher: Mapping[str, TuneTau] | None = field(
        default=None, metadata=_spec(record=TuneTau, each=True, optional=True)
    )

    @classmethod
    def _check_together(cls, values: Mapping[str, Any], at: str) -> None:
        names, c = values.get("class_names"), values.get("C")
        if isinstance(names, list | tuple) and _is_int(c) and len(names) != c:
            raise _malformed(f"{at}.class_names", f"{c} class names (C)", names)
        for name in values.get("teachers") or {}:
            if not isinstance(name, str) or not _TEACHER_NAME.match(name):
                raise _malformed(
                    f"{at}.teachers", "teacher names of letters, digits, '_', '.', '+', '-'", name
                )
        teachers = values.get("teachers") or {}
        views = values.get("views")
        if values.get("format") != format_for(teachers, views):
            sparse = [n for n, t in teachers.items() if isinstance(t, TeacherInfo) and t.sparse]
            mixed = isinstance(views, ViewsInfo) and views.mixing is not None
            want = f"{format_for(teachers, views)} (" + (
                f"sparse teacher {sparse[0]!r})"
                if sparse
                else "mixed views)"
                if mixed
                else "every teacher dense)"
            )
            raise _malformed(f"{at}.format", want, values.get("format"))

    @property
    def mixing(self) -> MixingInfo | None:
        """The mixed views' recipe (None: no view is mixed)."""
        return None if self.views is None else self.views.mixing

    @property
    def num_chunks(self) -> int:
        return -(-self.N // self.chunk_size)

    @property
    def compressor(self) -> str:
        """The compressor the cache was written with (zstd when the config does not say)."""
        return str(self.config.get("compressor", "zstd"))


def format_for(teachers: Mapping[str, Any], views: ViewsInfo | None = None) -> int:
    """The format of a cache with these teachers (:class:`TeacherInfo` by name) and views: 2
    when a teacher is sparse or the views are mixed, else 1 (so readers of format 1 keep
    reading dense caches)."""
    sparse = [t for t in teachers.values() if isinstance(t, TeacherInfo) and t.sparse]
    mixed = isinstance(views, ViewsInfo) and views.mixing is not None
    if any(t.topk is not None and t.topk.profile is not None for t in sparse):
        return FORMAT_VERSION
    return MIXED_FORMAT_VERSION if sparse or mixed else DENSE_FORMAT_VERSION


def format_of(attrs: Mapping[str, Any]) -> Any:
    """The format version root metadata says it has, before parsing it (which only this
    version's format can pass)."""
    return attrs.get("format")


def config_of(attrs: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
    """``(config_key, config)`` of root metadata that may not parse (to tell a cache made
    with other settings apart before resuming it)."""
    config = attrs.get("config")
    return attrs.get("config_key"), config if isinstance(config, Mapping) else {}


def attribute_keys() -> dict[str, tuple[str, ...]]:
    """The keys of the root metadata by where they sit (``""`` for the root itself)."""
    return {
        "": CacheMeta.keys_of(),
        "dataset": DatasetInfo.keys_of(),
        "teachers.<name>": TeacherInfo.keys_of(),
        "teachers.<name>.calibration": Calibration.keys_of(),
        "teachers.<name>.topk": TopKInfo.keys_of(),
        "views": ViewsInfo.keys_of(),
        "views.mixing": MixingInfo.keys_of(),
        "tune_tau": TuneTau.keys_of(),
        "tune_tau.choice": TauChoice.keys_of(),
    }
