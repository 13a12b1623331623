"""Issue 7, item 6: bad input ends in one line on stderr, exit 2, no traceback. Only the cases
not covered elsewhere (tests/cli, tests/students, tests/engine, tests/analysis, tests/data):
py: datasets with bad labels, image folders and lists with unreadable or missing files, a
class without samples, distill/tune-tau values out of range, a cache of another dataset,
NaN/Inf in a cache's teacher outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from softlabels_reliability_faults import (
    DATASET,
    OTHER_DATASET,
    invoke,
    one_error_line,
)

import softlabels
from softlabels.stores.cache import add_teacher


def _dump(dataset: str, out: Path, *extra: object, teacher: str = "a=cnn1d") -> object:
    return invoke(
        "dump",
        "--dataset",
        dataset,
        "--teacher",
        teacher,
        "--out",
        out,
        "--chunk-size",
        2,
        "--batch-size",
        2,
        "--device",
        "cpu",
        "--json",
        *extra,
    )


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("label_out_of_range", ["labels in [0, 3)", "got 7", "'train/3'"]),
        ("negative_label", ["got -1", "'train/2'"]),
        ("zero_sample_class", ["Class 'b' (id 1) has no training samples"]),
    ],
)
def test_bad_py_dataset(name: str, words: list[str], tmp_path: Path) -> None:
    out = tmp_path / "c.slc"
    line = one_error_line(_dump(f"py:softlabels_reliability_data:{name}", out))
    for word in words:
        assert word in line, line
    assert not out.exists()


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _image_tree(root: Path) -> None:
    k = 0
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            for i in range(3):
                _png(root / split / cls / f"{i}.png", k)
                k += 1


def test_imagefolder_with_an_unreadable_image(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _image_tree(root)
    good = (root / "train" / "dog" / "1.png").read_bytes()
    (root / "train" / "dog" / "1.png").write_bytes(b"not a png at all")  # row 4: chunk 2
    out = tmp_path / "c.slc"
    spec = f"imagefolder:root={root},size=8"
    line = one_error_line(_dump(spec, out, teacher="a=resnet20"))
    assert "Cannot read image" in line and "train/dog/1.png" in line, line
    cache = softlabels.open_cache(str(out))
    assert cache.missing_chunks()["labels"] == [2]  # chunks before it committed, kept
    assert {p.kind for p in cache.verify()} == {"uncommitted"}
    (root / "train" / "dog" / "1.png").write_bytes(good)
    fixed = _dump(spec, out, teacher="a=resnet20")
    assert fixed.exit_code == 0, fixed.stderr
    assert json.loads(fixed.stdout)["chunks_written"] == 1
    assert softlabels.open_cache(str(out)).verify() == []


def test_imagefolder_with_an_empty_class(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _image_tree(root)
    for f in (root / "train" / "dog").iterdir():
        f.unlink()
    out = tmp_path / "c.slc"
    line = one_error_line(_dump(f"imagefolder:root={root},size=8", out, teacher="a=resnet20"))
    assert "'dog'" in line and "no training samples" in line, line
    assert not out.exists()


def test_imagenet_lt_list_with_a_missing_file(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 0)
    (tmp_path / "train.txt").write_text("a.png 0\nmissing/b.png 1\n")
    (tmp_path / "val.txt").write_text("a.png 0\n")
    out = tmp_path / "c.slc"
    spec = f"imagenet-lt:root={tmp_path},train=train.txt,test=val.txt,size=8"
    line = one_error_line(_dump(spec, out, teacher="a=resnet20"))
    assert "missing/b.png" in line and "1 of 2" in line, line
    assert not out.exists()


def test_imagenet_lt_label_out_of_range(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 0)
    _png(tmp_path / "b.png", 1)
    (tmp_path / "train.txt").write_text("a.png 0\nb.png 5\n")
    spec = f"imagenet-lt:root={tmp_path},train=train.txt,test=train.txt,size=8,classes=2"
    line = one_error_line(_dump(spec, tmp_path / "c.slc", teacher="a=resnet20"))
    assert "got 5" in line and "[0, 2)" in line, line


# --------------------------------------------------------------------------- distill


def _distill(cache: Path, out: Path, *flags: object, dataset: str = DATASET) -> object:
    return invoke(
        "distill",
        cache,
        "--dataset",
        dataset,
        "--out",
        out,
        "--device",
        "cpu",
        "--epochs",
        1,
        "--no-plots",
        *flags,
    )


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--method", "kd", "--alpha", "-0.1"], "alpha in [0, 1], got -0.1"),
        (["--method", "dive", "--alpha", "1.01"], "alpha in [0, 1], got 1.01"),
        (["--method", "kd", "--alpha", "nan"], "alpha in [0, 1], got nan"),
        (["--method", "kd", "--tau", "-1"], "tau > 0, got -1"),
        (["--method", "dive", "--tau", "0"], "tau > 0, got 0"),
        (["--method", "kd", "--tau", "nan"], "tau > 0, got nan"),
        (["--method", "kd", "--tau", "hot"], "--tau a number or 'auto'"),
    ],
)
def test_distill_values_out_of_range(flags, words: str, reference, tmp_path: Path) -> None:
    out = tmp_path / "run"
    line = one_error_line(_distill(reference("single"), out, *flags))
    assert words in line, line
    assert not (out / "student").exists()


@pytest.mark.parametrize("line", ["tau = 0", "tau = -2.5", "alpha = -0.5", "alpha = 2"])
def test_distill_plan_values_out_of_range(line: str, reference, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[defaults]\nepochs = 1\n\n[[student]]\nname = "s"\nmethod = "kd"\n{line}\n')
    error = one_error_line(_distill(reference("single"), tmp_path / "run", "--plan", plan))
    assert line.split()[0] in error and "(student 's')" in error, error


def test_distill_infinite_tau_is_refused(reference, tmp_path: Path) -> None:
    """tau = inf is no temperature: refused up front (it once trained and diverged at step 0)."""
    line = one_error_line(
        _distill(reference("single"), tmp_path / "run", "--method", "kd", "--tau", "inf")
    )
    assert "tau" in line


def test_distill_on_a_cache_of_another_dataset(reference, tmp_path: Path) -> None:
    cache = reference("single")
    out = tmp_path / "run"
    line = one_error_line(_distill(cache, out, "--method", "kd", dataset=OTHER_DATASET))
    fp = softlabels.open_cache(str(cache)).fingerprint
    assert "another dataset" in line and fp[:16] in line, line
    assert not (out / "student").exists()


@pytest.mark.parametrize("taus", ["0", "-2", "0:3:1", "nan", "inf", "1,0"])
def test_tune_tau_temperature_not_positive(taus: str, reference) -> None:
    cache = reference("single")
    line = one_error_line(invoke("tune-tau", cache, "--taus", taus, "--dry-run", "--device", "cpu"))
    assert "--taus" in line, line
    assert softlabels.open_cache(str(cache)).meta["tune_tau"] is None


# --------------------------------------------------------------------------- NaN teachers


@pytest.fixture
def nan_cache(reference, copy_of) -> tuple[Path, list[str]]:
    """The K-view cache plus a teacher ``bad`` whose logits are NaN/Inf for two samples."""
    root = copy_of(reference("views"))
    cache = softlabels.open_cache(str(root))
    z = np.asarray(cache.teacher("a").logits[...]).astype(np.float16)
    z[7] = np.nan  # every view of row 7
    z[100, :, 3] = np.inf
    add_teacher(str(root), "bad", {"model": "nan", "dtype": "float16"}, {"logits": z})
    ids = cache.samples().column("sample_id").to_pylist()
    return root, [ids[7], ids[100]]


def test_tune_tau_names_the_samples_with_nan_logits(nan_cache) -> None:
    root, ids = nan_cache
    line = one_error_line(
        invoke("tune-tau", root, "--teacher", "bad", "--taus", "2", "--dry-run", "--device", "cpu")
    )
    assert "NaN/Inf" in line and ids[0] in line, line


def test_distill_names_the_samples_with_nan_logits(nan_cache, tmp_path: Path) -> None:
    """NaN/Inf targets are refused before training, naming the samples (not a divergence)."""
    root, ids = nan_cache
    line = one_error_line(_distill(root, tmp_path / "run", "--method", "kd", "--teacher", "bad"))
    assert "NaN" in line and ids[0] in line, line
