"""CBD, SSD and ECL students end to end, and their bad combinations."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import softlabels
from softlabels.cli.app import app
from softlabels.errors import UsageError
from softlabels.students import StudentSpec, distill, parse_plan
from softlabels.teachers import DumpConfig, TeacherSpec, dump

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"


@pytest.fixture(scope="module")
def calibrated_cache(cache_views: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The 4-view cache plus a stand-in calibrated teacher (scaled logits of 'bsce')."""
    from softlabels.stores.cache import add_teacher

    out = tmp_path_factory.mktemp("cal") / "cache.slc"
    shutil.copytree(cache_views, out)
    cache = softlabels.open_cache(str(out))
    logits = cache.teacher("bsce").reader().read_all().astype(np.float32)
    info = cache.teacher("bsce").info | {"calibration": {"method": "lws", "source": "bsce"}}
    add_teacher(
        str(out),
        "bsce+lws",
        info,
        {"logits": logits * np.linspace(0.5, 1.5, logits.shape[-1], dtype=np.float32)},
    )
    return str(out)


def test_cbd_ssd_ecl_train_and_evaluate(calibrated_cache: str, tmp_path: Path) -> None:
    plan = """
[defaults]
model = "cnn1d"
epochs = 2
batch_size = 32
data_seed = 0

[[student]]
name = "cbd"
method = "cbd"
teachers = ["bsce", "rnd"]

[[student]]
name = "ssd"
method = "ssd"
teacher = "bsce+lws"

[[student]]
name = "ecl"
method = "ecl"
teacher = "bsce"
experts = 2
"""
    specs = parse_plan(tomllib.loads(plan))
    res = distill(calibrated_cache, DATA, specs, tmp_path / "r", device="cpu", plots=False)
    by = {s["name"]: s for s in res.students}
    assert all(s["status"] == "ok" for s in res.students)
    assert by["cbd"]["teacher"] == "bsce+rnd"
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {s["name"] for s in summary["students"]} == {"cbd", "ssd", "ecl"}
    assert res.passes == 2  # CBD samples class-balanced, the others by instance
    import pyarrow.parquet as pq

    metrics = {
        r["student"]: r
        for r in pq.read_table(tmp_path / "r" / "metrics.parquet").to_pylist()
        if r["epoch"] == 2
    }
    assert metrics["ssd"]["hard_top1"] is not None  # both SSD heads are evaluated
    config = json.loads(
        softlabels.models.load_checkpoint(tmp_path / "r" / "cbd" / "model.pt")[1]["extra"]["config"]
    )
    assert config["sampler"] == "class-balanced"
    for name in ("cbd", "ssd", "ecl"):  # each student is a checkpoint `softlabels eval` can load
        out = CliRunner().invoke(
            app,
            [
                "eval",
                "--dataset",
                DATA,
                "--model",
                str(tmp_path / "r" / name / "model.pt"),
                "--json",
                "--device",
                "cpu",
            ],
        )
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["top1"] == pytest.approx(by[name]["top1"])


def test_cbd_without_cached_features_is_refused(teacher_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "nofeat.slc"
    dump(
        DumpConfig(
            dataset=DATA,
            teachers=(TeacherSpec("bsce", str(teacher_path)),),
            features=False,
            chunk_size=64,
        ),
        str(cache),
        device="cpu",
    )
    with pytest.raises(UsageError, match="features"):
        distill(
            str(cache),
            DATA,
            [StudentSpec(name="c", method="cbd", epochs=1)],
            tmp_path / "o",
            device="cpu",
        )


def test_ssd_without_calibrated_teacher_is_refused(cache_views: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="calibrate"):
        distill(
            cache_views,
            DATA,
            [StudentSpec(name="s", method="ssd", teacher="bsce", epochs=1)],
            tmp_path / "o",
            device="cpu",
        )


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--method", "ecl", "--experts", "1"], "experts >= 2"),
        (["--method", "ssd", "--teacher", "bsce"], "calibrate"),
        (["--method", "cbd", "--teacher", "nobody"], "nobody"),
    ],
)
def test_bad_combinations_exit_2(
    cache_views: str, tmp_path: Path, flags: list[str], match: str
) -> None:
    args = [
        "distill",
        cache_views,
        "--dataset",
        DATA,
        "--out",
        str(tmp_path / "o"),
        "--epochs",
        "1",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args + flags)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], result.stderr


def test_ssd_stage_iv_lws_on_the_hard_head(calibrated_cache: str, tmp_path: Path) -> None:
    spec = StudentSpec(
        name="ssd", method="ssd", teacher="bsce+lws", epochs=1, batch_size=32, final_lws=True
    )
    res = distill(
        calibrated_cache,
        DATA,
        [spec],
        tmp_path / "r",
        device="cpu",
        plots=False,
        evaluate_teachers=False,
    )
    lws = res.students[0]["hard_lws"]
    assert len(lws["lws_scale"]) == 10 and all(np.isfinite(lws["lws_scale"]))
    assert lws["lws_scale"] != [1.0] * 10  # the scale was trained
    assert 0.0 <= lws["top1"] <= 1.0
    assert json.loads((tmp_path / "r" / "ssd" / "final_lws.json").read_text()) == lws
    with pytest.raises(UsageError, match="SSD option"):
        StudentSpec(name="k", method="kd", final_lws=True)
