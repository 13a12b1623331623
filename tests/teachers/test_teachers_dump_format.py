"""Cache format round trip of ``dump``: read back with plain zarr and pyarrow, compared with
the teacher run directly; clean and replayed views, several teachers, dtypes, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import zarr
from softlabels_teachers_helpers import (
    BATCH,
    CHUNK,
    DATASET,
    array_chunk_files,
    cache_files,
    dump_to,
)

import softlabels
from softlabels.data import view_seeds
from softlabels.engine.inputs import epoch_aligned_seeds
from softlabels.errors import UsageError
from softlabels.metrics import shot_groups
from softlabels.models import create_model, load_model, save_checkpoint


def _run(spec: str, ds, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """The teacher on ``x`` in the dump's batches (CPU kernels' bits depend on batch shape)."""
    assert CHUNK % BATCH == 0  # so the dump's batches are plain BATCH-row blocks from row 0
    lm = load_model(spec, num_classes=ds.num_classes, in_channels=1)
    logits, feats = [], []
    with torch.inference_mode():
        for start in range(0, len(x), BATCH):
            lo, fe = lm.forward(x[start : start + BATCH])
            logits.append(lo.float().numpy())
            feats.append(None if fe is None else fe.float().numpy())
    return np.concatenate(logits), None if feats[0] is None else np.concatenate(feats)


def _fp16_close(stored: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float16 rounding (half an ulp is 2**-11 relative)."""
    assert stored.dtype == np.float16
    np.testing.assert_allclose(stored.astype(np.float32), want, rtol=2**-10, atol=2**-14)


def _attrs(root: Path) -> dict:
    return json.loads((root / "zarr.json").read_text())["attributes"]["softlabels"]


def test_clean_dump_reads_back_with_plain_zarr_and_pyarrow(reference: Path, dataset) -> None:
    split = dataset.train
    n, c = len(split), dataset.num_classes
    g = zarr.open_group(str(reference), mode="r")

    labels = g["labels"]
    assert labels.shape == (n,) and labels.dtype == np.int32
    np.testing.assert_array_equal(labels[...], split.labels)
    seeds = g["views/seed"]
    assert seeds.shape == (n, 1) and seeds.dtype == np.uint64
    np.testing.assert_array_equal(seeds[...], 0)

    logits, feats = g["teachers/a/logits"], g["teachers/a/features"]
    assert logits.dtype == np.float16 and feats.dtype == np.float16
    assert logits.shape == (n, 1, c) and feats.shape[:2] == (n, 1)
    assert logits.chunks[0] == CHUNK and feats.chunks[0] == CHUNK

    want_logits, want_feats = _run("cnn1d", dataset, dataset.clean(split.load(np.arange(n))))
    _fp16_close(logits[:, 0], want_logits)
    _fp16_close(feats[:, 0], want_feats)

    weight, bias = g["teachers/a/classifier/weight"], g["teachers/a/classifier/bias"]
    assert weight.shape == (c, feats.shape[2]) and bias.shape == (c,)
    assert weight.dtype == np.float32 and bias.dtype == np.float32
    lm = load_model("cnn1d", num_classes=c, in_channels=1)
    w, b = lm.classifier()
    np.testing.assert_array_equal(weight[...], w.numpy())
    np.testing.assert_array_equal(bias[...], b.numpy())
    # The classifier turns the stored features back into the stored logits.
    rebuilt = feats[:, 0].astype(np.float32) @ weight[...].T + bias[...]
    np.testing.assert_allclose(rebuilt, want_logits, rtol=0.02, atol=0.02)

    samples = pq.read_table(reference / "samples.parquet")
    assert samples.column_names == ["row", "sample_id", "label", "split"]
    assert samples.column("row").to_pylist() == list(range(n))
    assert samples.column("sample_id").to_pylist() == list(split.ids)
    assert samples.column("label").to_pylist() == split.labels.tolist()
    assert set(samples.column("split").to_pylist()) == {"train"}

    classes = pq.read_table(reference / "classes.parquet")
    assert classes.column_names == ["class_id", "name", "train_count", "shot_group"]
    counts = dataset.class_counts("train")
    assert classes.column("class_id").to_pylist() == list(range(c))
    assert classes.column("name").to_pylist() == list(dataset.class_names)
    assert classes.column("train_count").to_pylist() == counts.tolist()
    assert classes.column("shot_group").to_pylist() == shot_groups(counts).tolist()

    meta = _attrs(reference)
    assert (meta["N"], meta["C"], meta["V"], meta["chunk_size"]) == (n, c, 1, CHUNK)
    assert meta["views"]["mode"] == "clean" and meta["views"]["count"] == 0
    assert meta["dataset"]["fingerprint"] == split.fingerprint()
    assert meta["dataset"]["spec"] == dataset.spec
    assert meta["class_names"] == list(dataset.class_names)
    assert list(meta["teachers"]) == ["a"]
    assert meta["teachers"]["a"]["dtype"] == "float16" and meta["teachers"]["a"]["features"]


def test_two_teachers_one_a_checkpoint(tmp_path: Path, dataset) -> None:
    net = create_model("mlp", num_classes=10, in_channels=1, in_features=40, seed=7)
    ckpt = save_checkpoint(tmp_path / "mlp.pt", net)
    out = tmp_path / "two.slc"
    result = dump_to(out, "a=cnn1d", f"b={ckpt}")
    assert result.status == "created" and result.teachers == ["a", "b"]
    split = dataset.train
    x = dataset.clean(split.load(np.arange(len(split))))
    g = zarr.open_group(str(out), mode="r")
    for name, spec in (("a", "cnn1d"), ("b", str(ckpt))):
        want, _ = _run(spec, dataset, x)
        _fp16_close(g[f"teachers/{name}/logits"][:, 0], want)
    info = _attrs(out)["teachers"]
    assert [info["a"]["order"], info["b"]["order"]] == [0, 1]
    # A checkpoint teacher is identified by its bytes, not only by its path.
    assert info["b"]["model_id"].startswith(f"{ckpt}#sha256=")
    assert not np.array_equal(g["teachers/a/logits"][...], g["teachers/b/logits"][...])


def test_random_schedule_hashes_seed_row_and_view(tmp_path: Path, dataset) -> None:
    out = tmp_path / "random.slc"
    dump_to(out, "a=cnn1d", views=3, seed=5, schedule="random")
    seeds = np.asarray(zarr.open_group(str(out), mode="r")["views/seed"][...])
    np.testing.assert_array_equal(seeds, view_seeds(5, np.arange(len(dataset.train)), 3))
    assert _attrs(out)["views"]["schedule"] == "random"


def test_replayed_views_reproduce_the_teacher_exactly_in_float32(tmp_path: Path, dataset) -> None:
    out = tmp_path / "views.slc"
    dump_to(out, "a=cnn1d", views=3, dtype="float32", seed=5)
    split = dataset.train
    n = len(split)
    g = zarr.open_group(str(out), mode="r")
    seeds = np.asarray(g["views/seed"][...])
    assert seeds.shape == (n, 3) and seeds.dtype == np.uint64
    # epoch-aligned (the default): view v is the augmentation epoch v of an online run gives
    np.testing.assert_array_equal(seeds, epoch_aligned_seeds(5, np.arange(n), 3))
    logits = np.asarray(g["teachers/a/logits"][...])
    feats = np.asarray(g["teachers/a/features"][...])
    assert logits.dtype == np.float32 and logits.shape == (n, 3, 10)
    raw = split.load(np.arange(n))
    for v in range(3):
        want_logits, want_feats = _run("cnn1d", dataset, dataset.augment(raw, seeds[:, v]))
        np.testing.assert_array_equal(logits[:, v], want_logits)
        np.testing.assert_array_equal(feats[:, v], want_feats)
    # Augmented views really differ from one another and from the clean input.
    clean, _ = _run("cnn1d", dataset, dataset.clean(raw))
    assert not np.array_equal(logits[:, 0], logits[:, 1])
    assert not np.array_equal(logits[:, 0], clean)
    views = _attrs(out)["views"]
    assert views["mode"] == "augmented" and views["count"] == 3 and views["seed"] == 5
    assert views["strength"] == "standard" and views["recipe"] == dataset.recipe


def test_no_features_and_float32(tmp_path: Path, dataset) -> None:
    out = tmp_path / "nofeat.slc"
    dump_to(out, "a=cnn1d", features=False, dtype="float32")
    g = zarr.open_group(str(out), mode="r")
    assert "features" not in g["teachers/a"]
    assert not (out / "teachers" / "a" / "features").exists()
    assert _attrs(out)["teachers"]["a"]["features"] is False
    split = dataset.train
    want, _ = _run("cnn1d", dataset, dataset.clean(split.load(np.arange(len(split)))))
    np.testing.assert_array_equal(g["teachers/a/logits"][:, 0], want)
    assert softlabels.open_cache(str(out)).teacher("a").features is None


def test_test_split(tmp_path: Path, dataset) -> None:
    out = tmp_path / "test.slc"
    result = dump_to(out, split="test")
    assert result.num_samples == len(dataset.test) == 100
    samples = pq.read_table(out / "samples.parquet")
    assert set(samples.column("split").to_pylist()) == {"test"}
    assert samples.column("sample_id").to_pylist() == list(dataset.test.ids)
    cache = softlabels.open_cache(str(out))
    assert cache.fingerprint == dataset.test.fingerprint()
    np.testing.assert_array_equal(cache.labels, dataset.test.labels)
    softlabels.check_dataset(cache, dataset)  # the split recorded in the cache is used


def test_same_command_twice_gives_identical_bytes(tmp_path: Path, cli) -> None:
    args = [
        "dump", "--dataset", DATASET, "--teacher", "a=cnn1d", "--teacher", "b=mlp",
        "--views", "2", "--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu",
        "--json",
    ]  # fmt: skip
    first, second = tmp_path / "one.slc", tmp_path / "two.slc"
    for out in (first, second):
        result = cli(*args, "--out", out)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "created"
    one, two = cache_files(first), cache_files(second)
    assert sorted(one) == sorted(two)
    assert len(array_chunk_files(first)) == 5 * (2 + 2 * 2) + 4  # row chunks + classifiers
    differing = [k for k in one if one[k] != two[k]]
    assert differing == []
    assert not (first / ".softlabels.lock").exists()


def test_rerun_of_a_complete_cache_has_nothing_to_do(reference: Path, copy_of, cli) -> None:
    out = copy_of(reference)
    before = cache_files(out)
    base = ["dump", "--dataset", DATASET, "--teacher", "a=cnn1d", "--out", out]
    opts = ["--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu"]
    result = cli(*base, *opts, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "complete" and doc["chunks_written"] == 0
    assert doc["chunks_total"] == 5
    text = cli(*base, *opts)
    assert text.exit_code == 0 and "nothing to do" in text.stdout
    assert cache_files(out) == before


def test_python_api(reference: Path, dataset) -> None:
    cache = softlabels.open_cache(str(reference))
    assert isinstance(cache, softlabels.Cache)
    assert (cache.num_samples, cache.num_classes, cache.num_views) == (159, 10, 1)
    assert cache.teacher_names == ["a"] and cache.is_complete()
    cache.require_complete()
    cache.require_sound()
    logits = cache.teacher("a").logits
    assert isinstance(logits, zarr.Array)  # lazy: nothing read until sliced
    assert logits.shape == (159, 1, 10)
    part = np.asarray(logits[40:50])
    g = zarr.open_group(str(reference), mode="r")
    np.testing.assert_array_equal(part, g["teachers/a/logits"][40:50])
    np.testing.assert_array_equal(
        cache.teacher("a").reader().read_all(), g["teachers/a/logits"][...]
    )
    np.testing.assert_array_equal(cache.labels, dataset.train.labels)
    np.testing.assert_array_equal(cache.class_counts, dataset.class_counts("train"))
    w, b = cache.teacher("a").classifier
    lw, lb = load_model("cnn1d", num_classes=10, in_channels=1).classifier()
    np.testing.assert_array_equal(w, lw.numpy())
    np.testing.assert_array_equal(b, lb.numpy())
    assert cache.samples().num_rows == 159 and cache.classes().num_rows == 10
    with pytest.raises(UsageError, match="'nope'"):
        cache.teacher("nope")
    softlabels.check_dataset(cache, dataset)
