"""fashion-mnist-lt from tiny IDX files written in the real format (raw and gzip)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from softlabels.cli.app import app
from softlabels.data import load_dataset, longtail_counts, parse_dataset_spec, view_seeds
from softlabels.data.fashion_mnist import DEBIAN_ROOT
from softlabels.errors import SpecError, UsageError

PER_CLASS, TEST_PER_CLASS = 12, 3
NAMES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding: magic 0x0000080<ndim>, big-endian uint32 dims, uint8 data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">I{a.ndim}I", 0x800 + a.ndim, *a.shape) + a.tobytes()


def write_fashion(root: Path, gz: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    arrays = {
        "train_y": rng.permutation(np.repeat(np.arange(10), PER_CLASS)),
        "test_y": np.repeat(np.arange(10), TEST_PER_CLASS),
    }
    arrays["train_x"] = rng.integers(0, 256, (len(arrays["train_y"]), 28, 28), dtype=np.uint8)
    arrays["test_x"] = rng.integers(0, 256, (len(arrays["test_y"]), 28, 28), dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for key, name in NAMES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (root / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_long_tailed_train_and_balanced_test(tmp_path: Path, gz: bool) -> None:
    src = write_fashion(tmp_path, gz)
    ds = load_dataset(f"fashion-mnist-lt:root={tmp_path},imb=4,n_max={PER_CLASS}")
    assert ds.spec == f"fashion-mnist-lt:imb=4,n_max={PER_CLASS},root={tmp_path},seed=0"
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.class_counts().tolist() == longtail_counts(PER_CLASS, 10, 4)
    assert ds.class_counts("test").tolist() == [TEST_PER_CLASS] * 10
    rows = [int(i.split("/")[1]) for i in ds.train.ids]
    assert rows == sorted(rows) and all(i.startswith("train/") for i in ds.train.ids)
    np.testing.assert_array_equal(ds.train.labels, src["train_y"][rows])
    raw = ds.train.load(np.array([0, 2]))
    assert raw.dtype == torch.uint8 and raw.shape == (2, 1, 28, 28)
    np.testing.assert_array_equal(raw[:, 0].numpy(), src["train_x"][[rows[0], rows[2]]])
    np.testing.assert_array_equal(ds.test.array[:, 0], src["test_x"])
    assert ds.test.ids[:2] == ["test/0", "test/1"]
    assert ds.family == "image" and ds.input_shape == (1, 28, 28)
    assert ds.recipe["kind"] == "small_image" and ds.recipe["pad"] == 4 and ds.recipe["flip"]
    views = ds.augment(raw, view_seeds(0, np.arange(2), 1)[:, 0])
    assert views.shape == (2, 1, 28, 28) and views.dtype == torch.float32
    other = load_dataset(f"fashion-mnist-lt:root={tmp_path},imb=4,n_max={PER_CLASS},seed=1")
    assert other.train.fingerprint() != ds.train.fingerprint()


def test_defaults_name_the_debian_folder() -> None:
    spec = parse_dataset_spec("fashion-mnist-lt")
    assert spec.options == {"root": DEBIAN_ROOT, "imb": 100, "n_max": 6000, "seed": 0}
    assert DEBIAN_ROOT == "/usr/share/datasets/fashion-mnist"


def _damage(root: Path, name: str, data: bytes) -> Path:
    path = root / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("swap", "magic number 2051"),  # a labels file where the images should be
        ("truncate", "data bytes"),
        ("header", "header"),
        ("empty", "Expected an IDX file"),
        ("bad-gzip", "Cannot read IDX file"),
        ("cut-gzip", "Cannot read IDX file"),
        ("count", "as many labels"),
        ("label", "labels in"),
    ],
)
def test_a_wrong_file_is_one_error_naming_it(tmp_path: Path, damage: str, match: str) -> None:
    src = write_fashion(tmp_path, gz=False)
    images = tmp_path / NAMES["train_x"]
    if damage == "swap":
        bad = _damage(tmp_path, NAMES["train_x"], (tmp_path / NAMES["train_y"]).read_bytes())
    elif damage == "truncate":
        bad = _damage(tmp_path, NAMES["train_x"], images.read_bytes()[:-5])
    elif damage == "header":
        bad = _damage(tmp_path, NAMES["train_x"], images.read_bytes()[:10])
    elif damage == "empty":
        bad = _damage(tmp_path, NAMES["train_x"], b"")
    elif damage in ("bad-gzip", "cut-gzip"):
        images.unlink()
        data = gzip.compress(idx_bytes(src["train_x"]))
        data = b"not gzip at all" if damage == "bad-gzip" else data[: len(data) // 2]
        bad = _damage(tmp_path, NAMES["train_x"] + ".gz", data)
    elif damage == "count":
        bad = _damage(tmp_path, NAMES["train_y"], idx_bytes(src["train_y"][:-1]))
    else:
        labels = src["train_y"].copy()
        labels[4] = 10
        bad = _damage(tmp_path, NAMES["train_y"], idx_bytes(labels))
    with pytest.raises(UsageError, match=match) as info:
        load_dataset(f"fashion-mnist-lt:root={tmp_path},n_max={PER_CLASS}")
    message = str(info.value)
    assert "\n" not in message and str(bad) in message


def test_missing_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="nowhere"):
        load_dataset(f"fashion-mnist-lt:root={tmp_path / 'nowhere'}")
    write_fashion(tmp_path, gz=True)
    (tmp_path / (NAMES["test_y"] + ".gz")).unlink()
    with pytest.raises(SpecError, match=r"t10k-labels-idx1-ubyte.*dataset-fashion-mnist"):
        load_dataset(f"fashion-mnist-lt:root={tmp_path}")


def test_cli_exits_2_with_one_line_naming_the_file(tmp_path: Path) -> None:
    write_fashion(tmp_path, gz=False)
    bad = _damage(tmp_path, NAMES["test_x"], (tmp_path / NAMES["test_x"]).read_bytes()[:-1])
    spec = f"fashion-mnist-lt:root={tmp_path},n_max={PER_CLASS}"
    result = CliRunner().invoke(
        app, ["eval", "--dataset", spec, "--model", "resnet20", "--device", "cpu"]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(bad) in lines[0]
