"""Teachers that misbehave: NaN for some samples, values beyond float16, models the dump
cannot take features from; the dump names what went wrong and keeps what it committed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import softlabels_teachers_fixture_nets as nets
import zarr
from softlabels_teachers_helpers import (
    BATCH,
    CHUNK,
    DATASET,
    FIXTURE_NETS,
    LOCK,
    cache_files,
    dump_to,
    finite,
    one_error_line,
)

import softlabels
from softlabels.errors import UsageError
from softlabels.models import create_model, save_checkpoint


def _dump_args(out: Path, teacher: str, *extra: object) -> list[object]:
    return [
        "dump", "--dataset", DATASET, "--teacher", teacher, "--out", out,
        "--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu", *extra,
    ]  # fmt: skip


def _poison(monkeypatch: pytest.MonkeyPatch, dataset, rows: list[int]) -> list[str]:
    """Make ``poisoned`` return NaN for exactly these rows; return their sample ids."""
    x = dataset.clean(dataset.train.load(np.arange(len(dataset.train)))).flatten(1)
    keys = x[rows, : nets.KEY_LEN]
    hits = (x[:, None, : nets.KEY_LEN] == keys[None]).all(-1).any(-1)
    assert np.flatnonzero(hits.numpy()).tolist() == rows  # the keys single out these rows
    monkeypatch.setattr(nets, "POISON", keys.tolist())
    return [dataset.train.ids[r] for r in rows]


def test_nan_teacher_names_samples_and_keeps_committed_chunks(
    tmp_path: Path, dataset, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [40, 45, 63]  # all in chunk 1 (rows 32..63)
    ids = _poison(monkeypatch, dataset, rows)
    others = [i for r, i in enumerate(dataset.train.ids) if r not in rows]
    out = tmp_path / "nan.slc"
    teacher = f"a=py:{FIXTURE_NETS}:poisoned"

    result = cli(*_dump_args(out, teacher, "--json"))
    line = one_error_line(result)
    assert result.stderr.strip() == line  # with --json: nothing but the one line
    assert "NaN/Inf" in line and "3 sample(s)" in line
    for sid in ids:
        assert sid in line
    named = {tok.strip(",;:") for tok in line.split()}
    assert not named & set(others)  # only the bad samples are named
    assert "float32" not in line  # NaN is no float16 overflow: no such advice
    assert not (out / LOCK).exists()

    report = cli("verify", out, "--json")
    assert report.exit_code == 1
    problems = json.loads(report.stdout)["problems"]
    assert {p["kind"] for p in problems} == {"uncommitted"}
    arrays = {"labels", "views/seed", "teachers/a/logits", "teachers/a/features"}
    assert {(p["where"], p["chunk"]) for p in problems} == {
        (a, c) for a in arrays for c in (1, 2, 3, 4)
    }
    info = json.loads(cli("inspect", out, "--json").stdout)
    assert info["complete"] is False and info["missing_chunks"]["teachers/a/logits"] == 4
    g = zarr.open_group(str(out), mode="r")
    assert finite(g["teachers/a/logits"][:CHUNK])

    # Fixed teacher, same command: the committed chunk is kept, the rest written.
    monkeypatch.setattr(nets, "POISON", [])
    fixed = cli(*_dump_args(out, teacher, "--json"))
    assert fixed.exit_code == 0, fixed.stderr
    assert json.loads(fixed.stdout)["chunks_written"] == 4
    clean = tmp_path / "clean.slc"
    dump_to(clean, teacher)
    assert cache_files(out) == cache_files(clean)


def test_nan_in_the_first_chunk(tmp_path: Path, dataset, cli, monkeypatch) -> None:
    ids = _poison(monkeypatch, dataset, [3])
    result = cli(*_dump_args(tmp_path / "c.slc", f"a=py:{FIXTURE_NETS}:poisoned"))
    line = one_error_line(result)
    assert ids[0] in line and "1 sample(s)" in line
    assert softlabels.open_cache(str(tmp_path / "c.slc")).missing_chunks()["labels"] == [
        0, 1, 2, 3, 4,
    ]  # fmt: skip


def test_float16_overflow_suggests_float32(tmp_path: Path, cli) -> None:
    teacher = f"a=py:{FIXTURE_NETS}:huge"
    line = one_error_line(cli(*_dump_args(tmp_path / "fp16.slc", teacher)))
    assert "overflow float16" in line and "--dtype float32" in line
    assert "32 sample(s)" in line and "and 22 more" in line  # the first chunk, ids shortened

    out = tmp_path / "fp32.slc"
    result = cli(*_dump_args(out, teacher, "--dtype", "float32", "--json"))
    assert result.exit_code == 0, result.stderr
    logits = zarr.open_group(str(out), mode="r")["teachers/a/logits"][...]
    assert finite(logits) and np.abs(logits).min() > 9e5


def test_features_overflowing_float16_are_reported(tmp_path: Path, cli) -> None:
    """Features are teacher outputs too: Inf after the float16 cast is an error, not data."""
    out = tmp_path / "feat.slc"
    result = cli(*_dump_args(out, f"a=py:{FIXTURE_NETS}:feature_overflow"))
    if result.exit_code == 0:
        feats = zarr.open_group(str(out), mode="r")["teachers/a/features"][...]
        assert finite(feats), "features stored as Inf, and the dump said nothing"
    line = one_error_line(result)
    assert "features" in line and "--dtype float32" in line
    assert "32 sample(s)" in line  # every row of the first chunk
    # --no-features stores no features, so the same teacher dumps fine.
    ok = cli(*_dump_args(tmp_path / "nofeat.slc", f"a=py:{FIXTURE_NETS}:feature_overflow",
                         "--no-features", "--json"))  # fmt: skip
    assert ok.exit_code == 0, ok.stderr


def test_no_features_takes_any_logits_model(tmp_path: Path, cli) -> None:
    """A model whose final Linear does not reproduce its logits can still give logits."""
    out = tmp_path / "scaled.slc"
    result = cli(*_dump_args(out, f"a=py:{FIXTURE_NETS}:scaled", "--no-features", "--json"))
    assert result.exit_code == 0, result.stderr
    assert softlabels.open_cache(str(out)).is_complete()


def test_teacher_without_reproducible_features_is_a_one_line_error(tmp_path: Path, cli) -> None:
    line = one_error_line(cli(*_dump_args(tmp_path / "c.slc", f"a=py:{FIXTURE_NETS}:scaled")))
    assert "does not reproduce its logits" in line
    assert not (tmp_path / "c.slc").exists()


def test_checkpoint_of_a_fresh_mlp_dumps_reproducibly(tmp_path: Path) -> None:
    # An mlp whose first layer is not sized yet cannot be saved (it would be drawn afresh on
    # every load); one that is sized dumps to the same bytes every time.
    with pytest.raises(UsageError, match="in_features"):
        save_checkpoint(
            tmp_path / "lazy.pt", create_model("mlp", num_classes=10, in_channels=1, seed=3)
        )
    ckpt = save_checkpoint(
        tmp_path / "mlp.pt",
        create_model("mlp", num_classes=10, in_channels=1, seed=3, in_features=40),
    )
    dump_to(tmp_path / "one.slc", f"a={ckpt}")
    dump_to(tmp_path / "two.slc", f"a={ckpt}")
    one = zarr.open_group(str(tmp_path / "one.slc"), mode="r")["teachers/a/logits"][...]
    two = zarr.open_group(str(tmp_path / "two.slc"), mode="r")["teachers/a/logits"][...]
    np.testing.assert_array_equal(one, two)
