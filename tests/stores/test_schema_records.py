"""The format module: metadata records (round trip, validation), paths, record names."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from softlabels.errors import CacheError, ChecksumMismatchError, UsageError
from softlabels.stores import schema
from softlabels.stores.reader import Cache
from softlabels.stores.writer import ArraySpec, CacheWriter, add_teacher, update_meta

# The root metadata of a dump, as `softlabels dump` writes it (two teachers, one calibrated).
TEACHER = {
    "order": 0,
    "model": "cnn1d",
    "model_id": "cnn1d",
    "arch": {"name": "cnn1d", "kwargs": {"num_classes": 3}},
    "dtype": "float16",
    "features": True,
    "feature_dim": 8,
    "classifier": True,
    "classifier_kind": "linear",
    "cosine_scale": None,
    "calibration": None,
}
CALIBRATION = {
    "method": "lws",
    "source": "a",
    "epochs": 2,
    "lr": 0.1,
    "batch_size": 512,
    "weight_decay": 0.0005,
    "momentum": 0.9,
    "schedule": "cosine",
    "sampler": "class-balanced",
    "seed": 0,
    "tau_norm_power": None,
    "samples": 159,
    "formula": "lws_scale * (W v + b)",
    "losses": [1.2, 1.1],
    "evaluation": {"split": "train", "before": {"top1": 0.5}},
    "softlabels": "0.1.0",
}
META = {
    "format": 1,
    "N": 10,
    "C": 3,
    "V": 2,
    "chunk_size": 4,
    "config_key": "k" * 64,
    "config": {"dataset": "toy", "compressor": "zstd"},
    "dataset": {
        "spec": "toy",
        "name": "toy",
        "split": "train",
        "fingerprint": "f" * 64,
        "family": "signal1d",
        "recipe": {"kind": "signal1d"},
        "train_counts": [5, 3, 2],
    },
    "class_names": ["a", "b", "c"],
    "teachers": {
        "a": TEACHER,
        "a+lws": TEACHER | {"order": 1, "features": False, "calibration": CALIBRATION},
    },
    "views": {
        "mode": "augmented",
        "count": 2,
        "seed": 0,
        "strength": "standard",
        "recipe": {"kind": "signal1d"},
        "schedule": "epoch",
    },
    "created": {"softlabels": "0.1.0", "torch": "2.5.1"},
    "tune_tau": {
        "teacher": "a",
        "choice": {"tau": 2.0, "power": 0.5, "tau_eff": 4.0, "reason": "smallest T/p"},
        "groups": "thirds",
        "taus": [1.0, 2.0],
        "powers": [1.0, 0.5],
    },
    "tune_tau_by_teacher": {
        "a": {
            "teacher": "a",
            "choice": {"tau": 2.0, "power": 0.5, "tau_eff": 4.0, "reason": "smallest T/p"},
            "groups": "thirds",
            "taus": [1.0, 2.0],
            "powers": [1.0, 0.5],
        }
    },
}


def _dumped(d: dict) -> str:
    return json.dumps(d, indent=2)


# --------------------------------------------------------------------------- round trips


def test_from_dict_to_dict_is_the_identity_key_order_included() -> None:
    meta = schema.CacheMeta.from_dict(META)
    assert _dumped(meta.to_dict()) == _dumped(META)  # the bytes a writer puts in zarr.json
    assert schema.CacheMeta.from_dict(meta.to_dict()) == meta


def test_typed_reads() -> None:
    meta = schema.CacheMeta.from_dict(META)
    assert (meta.N, meta.C, meta.V, meta.num_chunks, meta.compressor) == (10, 3, 2, 3, "zstd")
    assert meta.dataset.train_counts == (5, 3, 2)
    assert meta.views is not None and meta.views.mode == "augmented"
    assert meta.tune_tau is not None and meta.tune_tau.choice.tau == 2.0
    a, cal = meta.teachers["a"], meta.teachers["a+lws"]
    assert a.features and a.feature_dim == 8 and a.calibration is None and not a.lws_scale
    assert cal.calibration is not None and cal.calibration.method == "lws" and cal.lws_scale


def test_records_built_in_code_write_every_key_in_field_order() -> None:
    rec = schema.ViewsInfo(mode="clean", count=0)
    # ``mixing`` (format 2) is written only when set, so views without it keep their bytes.
    assert list(rec.to_dict()) == [k for k in schema.ViewsInfo.keys_of() if k != "mixing"]
    mixing = schema.MixingInfo(mixup=0.2, cutmix=0.0, prob=0.5, rule="r", rule_version=1)
    mixed = schema.ViewsInfo(mode="augmented", count=2, mixing=mixing)
    assert list(mixed.to_dict()) == list(schema.ViewsInfo.keys_of())
    assert schema.ViewsInfo.from_dict(mixed.to_dict()) == mixed
    assert rec.to_dict() == {
        "mode": "clean",
        "count": 0,
        "seed": None,
        "strength": None,
        "recipe": None,
        "schedule": None,
    }
    full = schema.CacheMeta.from_dict(META)
    rebuilt = schema.CacheMeta(
        **{k: getattr(full, k) for k in schema.CacheMeta.keys_of()},
    )
    assert _dumped(rebuilt.to_dict()) == _dumped(META)


def test_unknown_keys_and_left_out_keys_round_trip() -> None:
    minimal = {"features": False, "zz_new": [1, 2], "classifier": True}
    info = schema.TeacherInfo.from_dict(minimal)
    assert info.extra == {"zz_new": [1, 2]}
    assert list(info.to_dict()) == ["features", "zz_new", "classifier"]  # nothing added
    meta = copy.deepcopy(META)
    meta["future"] = {"x": 1}
    meta["dataset"] = {"later": True, **meta["dataset"]}
    assert _dumped(schema.CacheMeta.from_dict(meta).to_dict()) == _dumped(meta)


def test_updated_writes_new_keys_after_the_keys_read() -> None:
    info = schema.TeacherInfo.from_dict({"model": "m", "dtype": "float16"})
    new = info.updated(features=False, classifier=True)
    assert list(new.to_dict()) == ["model", "dtype", "features", "classifier"]
    assert new.to_dict()["features"] is False  # written although it is the default
    kept = schema.CacheMeta.from_dict(META).updated(tune_tau=None)
    assert list(kept.to_dict()) == list(META) and kept.to_dict()["tune_tau"] is None


def test_dict_style_reads_still_work() -> None:
    info = schema.CacheMeta.from_dict(META).teachers["a+lws"]
    assert info["features"] is False and info.get("model") == "cnn1d"
    assert info["calibration"]["method"] == "lws"  # nested records read as their dicts
    assert "feature_dim" in info and "nope" not in info and info.get("nope", 3) == 3
    merged = info | {"order": 7}
    assert isinstance(merged, dict) and merged["order"] == 7 and dict(info)["order"] == 1
    with pytest.raises(KeyError):
        info["nope"]


def test_records_are_frozen_and_lists_become_tuples() -> None:
    meta = schema.CacheMeta.from_dict(META)
    with pytest.raises(AttributeError):
        meta.N = 3  # type: ignore[misc]
    assert meta.class_names == ("a", "b", "c") and meta.to_dict()["class_names"] == ["a", "b", "c"]


# --------------------------------------------------------------------------- malformed input


def _set(doc: dict, dotted: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is _DROP:
        del node[last]
    else:
        node[last] = value
    return doc


_DROP = object()


@pytest.mark.parametrize(
    ("dotted", "value", "named"),
    [
        ("N", "10", "softlabels.N"),
        ("N", -1, "softlabels.N"),
        ("C", True, "softlabels.C"),
        ("V", 0, "softlabels.V"),
        ("chunk_size", 0.5, "softlabels.chunk_size"),
        ("config_key", None, "softlabels.config_key"),
        ("config", [1], "softlabels.config"),
        ("class_names", ["a", "b"], "softlabels.class_names"),
        ("class_names", ["a", "b", 3], "softlabels.class_names"),
        ("dataset", "toy", "softlabels.dataset"),
        ("dataset.fingerprint", 3, "softlabels.dataset.fingerprint"),
        ("dataset.train_counts", [1, -2, 3], "softlabels.dataset.train_counts"),
        ("teachers", [], "softlabels.teachers"),
        ("teachers.a", "x", "softlabels.teachers.a"),
        ("teachers.a.features", "yes", "softlabels.teachers.a.features"),
        ("teachers.a.feature_dim", 0, "softlabels.teachers.a.feature_dim"),
        ("teachers.a.arch", "cnn1d", "softlabels.teachers.a.arch"),
        ("teachers.a+lws.calibration.method", None, "softlabels.teachers.a+lws.calibration.method"),
        (
            "teachers.a+lws.calibration.losses",
            ["x"],
            "softlabels.teachers.a+lws.calibration.losses",
        ),
        ("views.mode", "mixed", "softlabels.views.mode"),
        ("views.count", -1, "softlabels.views.count"),
        ("tune_tau.choice", 3, "softlabels.tune_tau.choice"),
        ("tune_tau.choice.tau", 0, "softlabels.tune_tau.choice.tau"),
        ("tune_tau.taus", "1,2", "softlabels.tune_tau.taus"),
        ("format", 2, "softlabels.format"),
    ],
)
def test_malformed_metadata_is_one_line_naming_the_key(
    dotted: str, value: object, named: str
) -> None:
    with pytest.raises(CacheError) as info:
        schema.CacheMeta.from_dict(_set(META, dotted, value))
    message = str(info.value)
    assert "\n" not in message and message.startswith("Expected ")
    assert f" at {named}, got " in message, message


@pytest.mark.parametrize(
    ("dotted", "named"),
    [
        ("N", "'N' at softlabels,"),
        ("dataset", "'dataset' at softlabels,"),
        ("dataset.fingerprint", "'fingerprint' at softlabels.dataset,"),
        ("views.mode", "'mode' at softlabels.views,"),
        ("tune_tau.choice", "'choice' at softlabels.tune_tau,"),
        ("teachers.a+lws.calibration.method", "'method' at softlabels.teachers.a+lws.calibration,"),
    ],
)
def test_a_missing_required_key_is_named(dotted: str, named: str) -> None:
    with pytest.raises(CacheError, match=f"^Expected a key {named.replace('+', '[+]')} got none$"):
        schema.CacheMeta.from_dict(_set(META, dotted, _DROP))


def test_teacher_names_are_checked() -> None:
    bad = copy.deepcopy(META)
    bad["teachers"]["../x"] = TEACHER
    with pytest.raises(CacheError, match=r"at softlabels\.teachers, got '\.\./x'"):
        schema.CacheMeta.from_dict(bad)


def test_records_built_in_code_validate_too() -> None:
    with pytest.raises(CacheError, match=r"^Expected an integer >= 0 at ViewsInfo\.count, got -1$"):
        schema.ViewsInfo(mode="clean", count=-1)
    with pytest.raises(CacheError, match=r"at TeacherInfo\.calibration"):
        schema.TeacherInfo(calibration={"method": "lws"})  # type: ignore[arg-type]
    with pytest.raises(CacheError, match="a JSON object"):
        schema.ViewsInfo.from_dict([1, 2])


# --------------------------------------------------------------------------- paths and names


def test_paths() -> None:
    assert schema.teacher_array("a+lws", schema.LWS_SCALE) == "teachers/a+lws/lws_scale"
    assert schema.array_meta_key(schema.VIEW_SEEDS) == "views/seed/zarr.json"
    assert schema.chunk_key(schema.teacher_array("a", schema.LOGITS), 3, 3) == (
        "teachers/a/logits/c/3/0/0"
    )
    with pytest.raises(UsageError, match="teacher array"):
        schema.teacher_array("a", "weights")
    with pytest.raises(UsageError, match="teacher name"):
        schema.teacher_array("../a", schema.LOGITS)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("chunk-000012.json", schema.RecordName(schema.CHUNK, 12, None)),
        ("chunk-1234567.json", schema.RecordName(schema.CHUNK, 1234567, None)),
        ("chunk-000003+a+lws.json", schema.RecordName(schema.CHUNK, 3, "a+lws")),
        ("static.json", schema.RecordName(schema.STATIC, None, None)),
        ("static+b.json", schema.RecordName(schema.STATIC, None, "b")),
        ("tables.json", schema.RecordName(schema.TABLES_RECORD, None, None)),
    ],
)
def test_record_names_round_trip(name: str, parsed: schema.RecordName) -> None:
    assert schema.parse_record_name(name) == parsed
    assert parsed.name == name


@pytest.mark.parametrize(
    "name", ["chunk-12.json", "chunk-000001.json.tmp", "static+.json", "other.json", "chunk-x.json"]
)
def test_names_no_record_has(name: str) -> None:
    assert schema.parse_record_name(name) is None


def test_table_builders_follow_the_table_schemas() -> None:
    samples = schema.samples_table(["s0", "s1"], np.array([2, 0]), "train")
    classes = schema.classes_table(["a", "b", "c"], np.array([5, 3, 2]), ["many", "few", "few"])
    assert samples.schema == schema.table_schema(schema.SAMPLES_TABLE)
    assert classes.schema == schema.table_schema(schema.CLASSES_TABLE)
    assert samples.column("row").to_pylist() == [0, 1]
    assert classes.column("class_id").to_pylist() == [0, 1, 2]


# --------------------------------------------------------------------------- through a cache


N, C, V, CHUNK = 10, 3, 2, 4


def _cache(tmp_path: Path) -> str:
    url = str(tmp_path / "c.slc")
    meta = copy.deepcopy(META)
    meta["teachers"] = {"a": TEACHER | {"features": False, "feature_dim": 5}}
    specs = [
        ArraySpec(schema.LABELS, (N,), "int32"),
        ArraySpec(schema.VIEW_SEEDS, (N, V), "uint64"),
        ArraySpec(schema.teacher_array("a", schema.LOGITS), (N, V, C), "float16"),
        ArraySpec(schema.teacher_array("a", schema.CLASSIFIER_WEIGHT), (C, 5), "float32", False),
        ArraySpec(schema.teacher_array("a", schema.CLASSIFIER_BIAS), (C,), "float32", False),
    ]
    tables = {t: pa.table({"x": [0]}) for t in schema.TABLES}
    with CacheWriter.open(url, meta=meta, specs=specs, tables=tables) as w:
        w.write_static(
            {
                schema.teacher_array("a", schema.CLASSIFIER_WEIGHT): np.full((C, 5), 2, np.float32),
                schema.teacher_array("a", schema.CLASSIFIER_BIAS): np.arange(C, dtype=np.float32),
            }
        )
        for c in w.pending_chunks():
            s, e = w.rows(c)
            w.write_chunk(
                c,
                {
                    schema.LABELS: np.arange(s, e, dtype=np.int32) % C,
                    schema.VIEW_SEEDS: np.zeros((e - s, V), np.uint64),
                    schema.teacher_array("a", schema.LOGITS): np.zeros((e - s, V, C), np.float16),
                },
            )
    return url


def _edit_root(url: str, edit) -> None:
    path = Path(url) / schema.ROOT_DOC
    doc = json.loads(path.read_text())
    edit(doc["attributes"][schema.ROOT_ATTR])
    path.write_text(json.dumps(doc, indent=2))


def test_a_cache_with_malformed_metadata_is_refused_naming_the_key(tmp_path: Path) -> None:
    url = _cache(tmp_path)
    _edit_root(url, lambda m: m["teachers"]["a"].update(feature_dim="5"))
    with pytest.raises(CacheError) as info:
        Cache(url)
    message = str(info.value)
    assert "\n" not in message and "softlabels.teachers.a.feature_dim" in message
    assert message.startswith(url)


def test_the_cli_refuses_malformed_metadata_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from softlabels.cli.app import app

    url = _cache(tmp_path)
    _edit_root(url, lambda m: m.update(V="2"))
    result = CliRunner().invoke(app, ["inspect", url], catch_exceptions=False)
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "softlabels.V" in lines[0] and "Traceback" not in result.stderr


def test_update_meta_refuses_a_malformed_value_and_writes_nothing(tmp_path: Path) -> None:
    url = _cache(tmp_path)
    before = (Path(url) / schema.ROOT_DOC).read_bytes()
    with pytest.raises(CacheError, match=r"softlabels\.tune_tau\.choice\.tau"):
        update_meta(url, "tune_tau", {"teacher": "a", "choice": {"tau": -1}})
    assert (Path(url) / schema.ROOT_DOC).read_bytes() == before
    assert not (Path(url) / ".softlabels.lock").exists()


def test_typed_accessors_of_a_cache(tmp_path: Path) -> None:
    url = _cache(tmp_path)
    cache = Cache(url)
    assert cache.views.mode == "augmented" and cache.tune_tau is not None
    assert cache.tune_tau.choice.power == 0.5 and cache.config_key == "k" * 64
    assert cache.dataset.split == "train" and cache.dataset["split"] == "train"
    assert cache.read_view_seeds().shape == (N, V)
    t = cache.teacher("a")
    assert t.info.classifier and t.info["feature_dim"] == 5 and t.lws_scale is None
    weight, bias = t.classifier or (None, None)
    assert np.array_equal(weight, np.full((C, 5), 2)) and np.array_equal(bias, np.arange(C))
    assert cache.verify() == []


def test_static_reads_are_verified(tmp_path: Path) -> None:
    url = _cache(tmp_path)
    path = Path(url) / schema.chunk_key(schema.teacher_array("a", schema.CLASSIFIER_BIAS), 0, 1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match=r"teachers/a/classifier/bias is corrupt"):
        Cache(url).teacher("a").classifier  # noqa: B018
    path.unlink()
    with pytest.raises(ChecksumMismatchError, match=r"teachers/a/classifier/bias is missing"):
        Cache(url).teacher("a").classifier  # noqa: B018


def test_an_lws_scale_is_required_of_an_lws_teacher(tmp_path: Path) -> None:
    url = _cache(tmp_path)
    rows = {schema.LOGITS: np.zeros((N, V, C), np.float32)}
    add_teacher(url, "a+lws", {"calibration": {"method": "lws", "source": "a"}}, rows)
    cache = Cache(url)
    assert cache.teacher("a+lws").info.lws_scale
    with pytest.raises(ChecksumMismatchError, match=r"teachers/a\+lws/lws_scale"):
        cache.teacher("a+lws").lws_scale  # noqa: B018
    assert [(p.kind, p.where) for p in cache.verify()] == [
        ("missing", "teachers/a+lws/lws_scale"),
        ("missing", "teachers/a+lws/lws_scale/zarr.json"),
    ]
    scale = np.linspace(0.5, 1.5, C).astype(np.float32)
    add_teacher(
        url,
        "a+lws",
        {"calibration": {"method": "lws", "source": "a"}},
        rows,
        {schema.LWS_SCALE: scale},
        replace=True,
    )
    cache = Cache(url)
    assert np.array_equal(cache.teacher("a+lws").lws_scale, scale) and cache.verify() == []
