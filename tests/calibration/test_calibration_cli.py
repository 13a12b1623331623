"""``softlabels calibrate``: output, --json, --dataset evaluation and one-line usage errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from softlabels_calibration_helpers import BATCH, CHUNK, DATASET, OTHER_DATASET, one_error_line

import softlabels
from softlabels.evaluation import evaluate_model
from softlabels.stores.cache import add_teacher


def _teachers(cache: Path) -> list[str]:
    return softlabels.open_cache(str(cache)).teacher_names


def test_json_result(cache: Path, cli) -> None:
    result = cli("calibrate", cache, "--teacher", "a", "--method", "lws", "--epochs", 2, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["teacher"] == "a+lws" and data["source"] == "a" and data["method"] == "lws"
    assert data["epochs"] == 2 and len(data["losses"]) == 2 and data["steps"] == 2
    assert data["num_samples"] == 159 and data["num_views"] == 1 and data["num_classes"] == 10
    assert data["evaluation"]["split"] == "train" and data["evaluation"]["dataset"] is None
    for key in ("before", "after"):
        assert set(data["evaluation"][key]) >= {"top1", "balanced", "groups", "ece"}
    assert data["lws_scale"]["min"] <= data["lws_scale"]["mean"] <= data["lws_scale"]["max"]
    assert data["replaced"] is False
    assert _teachers(cache) == ["a", "cos", "a+lws"]


def test_table_result(cache: Path, cli) -> None:
    result = cli("calibrate", cache, "--teacher", "a", "--method", "tau-norm")
    assert result.exit_code == 0, result.stderr
    for text in ("a+tau-norm", "tau-norm power", "before", "after", "balanced", "ECE"):
        assert text in result.stdout
    assert "error" not in result.stderr


def test_test_split_evaluation_runs_the_backbone_once(cache: Path, cli) -> None:
    result = cli(
        "calibrate", cache, "--teacher", "a", "--method", "lws", "--epochs", 2,
        "--dataset", DATASET, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    ev = json.loads(result.stdout)["evaluation"]
    assert ev["split"] == "test" and ev["dataset"] == DATASET
    assert ev["before"]["num_samples"] == 60
    ref = evaluate_model(DATASET, "cnn1d", device="cpu")  # the uncalibrated teacher
    assert ev["before"]["top1"] == pytest.approx(ref["top1"])
    assert ev["before"]["groups"] == pytest.approx(ref["groups"])
    text = cli("calibrate", cache, "--teacher", "a", "--method", "tau-norm", "--dataset", DATASET)
    assert text.exit_code == 0 and "test split" in text.stdout


def test_existing_teacher_needs_overwrite(cache: Path, cli) -> None:
    args = ("calibrate", cache, "--teacher", "a", "--method", "crt", "--epochs", 1, "--json")
    assert cli(*args).exit_code == 0
    before = softlabels.open_cache(str(cache)).teacher("a+crt").reader().read_all()
    line = one_error_line(cli(*args, "--seed", 3))
    assert "'a+crt'" in line and "--overwrite" in line
    after = softlabels.open_cache(str(cache)).teacher("a+crt").reader().read_all()
    np.testing.assert_array_equal(before, after)
    again = cli(*args, "--seed", 3, "--overwrite")
    assert again.exit_code == 0 and json.loads(again.stdout)["replaced"] is True
    c = softlabels.open_cache(str(cache))
    assert c.teacher_names == ["a", "cos", "a+crt"] and c.verify() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--teacher", "a", "--method", "platt"), "lws, crt or tau-norm, got 'platt'"),
        (("--teacher", "a", "--method", "lws", "--epochs", 0), "--epochs >= 1, got 0"),
        (("--teacher", "a", "--method", "crt", "--batch-size", 0), "--batch-size >= 1"),
        (("--teacher", "a", "--method", "lws", "--lr", -1), "--lr > 0"),
        (("--teacher", "a", "--method", "tau-norm", "--tau-norm-power", -1), "power >= 0"),
        (("--teacher", "zz", "--method", "lws"), "got 'zz'"),
        (("--teacher", "cos", "--method", "tau-norm"), "cosine classifier"),
        (("--teacher", "a", "--method", "lws", "--dataset", OTHER_DATASET), "another dataset"),
        (("--teacher", "a", "--method", "lws", "--device", "gpu7"), "--device"),
    ],
)
def test_usage_errors_write_nothing(reference: Path, cli, args: tuple, expected: str) -> None:
    files = sorted(p.as_posix() for p in reference.rglob("*"))
    line = one_error_line(cli("calibrate", reference, *args))
    assert expected in line, line
    assert sorted(p.as_posix() for p in reference.rglob("*")) == files


def test_teacher_without_features(no_features: Path, cli) -> None:
    line = one_error_line(cli("calibrate", no_features, "--teacher", "a", "--method", "lws"))
    assert "no cached features" in line and "without --no-features" in line


def test_teacher_without_classifier(cache: Path, cli) -> None:
    c = softlabels.open_cache(str(cache))
    feats = c.teacher("a").reader("features").read_all()
    logits = c.teacher("a").reader("logits").read_all()
    add_teacher(str(cache), "bare", {"model": "py:x:y"}, {"logits": logits, "features": feats})
    line = one_error_line(cli("calibrate", cache, "--teacher", "bare", "--method", "crt"))
    assert "'bare'" in line and "no cached classifier" in line


def test_calibrated_teacher_is_not_a_source(cache: Path, cli) -> None:
    assert cli("calibrate", cache, "--teacher", "a", "--method", "tau-norm").exit_code == 0
    line = one_error_line(cli("calibrate", cache, "--teacher", "a+tau-norm", "--method", "lws"))
    assert "already calibrated" in line and "calibrate 'a' instead" in line


def test_corrupt_features_are_named(cache: Path, cli) -> None:
    chunk = cache / "teachers" / "a" / "features" / "c" / "1" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    line = one_error_line(cli("calibrate", cache, "--teacher", "a", "--method", "lws"))
    assert "chunk 1 of teachers/a/features" in line
    assert _teachers(cache) == ["a", "cos"]


def test_corrupt_classifier_is_named(cache: Path, cli) -> None:
    w = cache / "teachers" / "a" / "classifier" / "weight" / "c" / "0" / "0"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0x55
    w.write_bytes(bytes(data))
    line = one_error_line(cli("calibrate", cache, "--teacher", "a", "--method", "tau-norm"))
    assert "teachers/a/classifier/weight" in line and "corrupt" in line


def test_test_split_cache_is_refused(tmp_path: Path, cli, reference: Path) -> None:
    from softlabels.teachers import DumpConfig, dump, parse_teacher

    out = tmp_path / "test.slc"
    config = DumpConfig(
        dataset=DATASET, teachers=(parse_teacher("a=cnn1d"),), chunk_size=CHUNK,
        batch_size=BATCH, split="test",
    )  # fmt: skip
    dump(config, str(out), device="cpu")
    line = one_error_line(cli("calibrate", out, "--teacher", "a", "--method", "lws"))
    assert "test split" in line and "--split train" in line
    shutil.rmtree(out)


def test_no_backbone_needed_but_dataset_needs_the_same_model(tmp_path: Path, cli) -> None:
    from softlabels.models import create_model, save_checkpoint
    from softlabels.teachers import DumpConfig, dump, parse_teacher

    def net(seed: int):
        return create_model("cnn1d", num_classes=10, in_channels=1, seed=seed)

    ckpt = save_checkpoint(tmp_path / "t" / "model.pt", net(1))
    out = tmp_path / "ckpt.slc"
    config = DumpConfig(
        dataset=DATASET, teachers=(parse_teacher(f"t={ckpt}"),), chunk_size=CHUNK,
        batch_size=BATCH,
    )  # fmt: skip
    dump(config, str(out), device="cpu")
    save_checkpoint(ckpt, net(2))  # the checkpoint changed after the dump
    line = one_error_line(
        cli("calibrate", out, "--teacher", "t", "--method", "lws", "--dataset", DATASET)
    )
    assert "changed since the dump" in line and "drop --dataset" in line
    ckpt.unlink()  # and is gone: calibration itself never needs it
    line = one_error_line(
        cli("calibrate", out, "--teacher", "t", "--method", "lws", "--dataset", DATASET)
    )
    assert "cannot load the model of teacher 't'" in line
    done = cli("calibrate", out, "--teacher", "t", "--method", "lws", "--epochs", 1, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["evaluation"]["split"] == "train"
