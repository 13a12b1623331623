"""Epoch-aligned views and distill --online: a cached student equals its online twin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from softlabels.caches import open_cache
from softlabels.cli.app import app
from softlabels.data import load_dataset
from softlabels.engine.inputs import BatchStream, epoch_aligned_seeds
from softlabels.engine.samplers import make_sampler
from softlabels.errors import UsageError
from softlabels.students import StudentSpec, distill
from softlabels.teachers import DumpConfig, TeacherSpec, dump

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"
VIEW_SEED = 5


def _w(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def aligned_cache(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> str:
    out = tmp_path_factory.mktemp("aligned") / "c.slc"
    cfg = DumpConfig(
        dataset=DATA,
        teachers=(TeacherSpec("bsce", str(teacher_path)),),
        views=3,
        dtype="float32",
        chunk_size=64,
        seed=VIEW_SEED,
    )
    dump(cfg, str(out), device="cpu")
    return str(out)


def test_cached_view_v_is_the_input_epoch_v_of_an_online_run_sees(aligned_cache: str) -> None:
    ds = load_dataset(DATA)
    cache = open_cache(aligned_cache)
    assert cache.meta["views"]["schedule"] == "epoch"
    seeds = cache.view_seeds[:]
    assert np.array_equal(seeds, epoch_aligned_seeds(VIEW_SEED, np.arange(len(seeds)), 3))
    sampler = make_sampler("instance", ds.train.labels, ds.num_classes, VIEW_SEED)
    online = BatchStream(ds, sampler, batch_size=16, device=torch.device("cpu"), seed=VIEW_SEED)
    for epoch in range(3):
        for batch in online.epoch(epoch):
            raw = ds.train.load(batch.rows)
            replayed = ds.augment(raw, seeds[batch.rows, epoch], strength="standard")
            assert torch.equal(batch.x, replayed)


@pytest.mark.parametrize("epochs", [3, 7])
def test_epoch_schedule_replays_view_e_mod_v_so_each_view_equally_often(
    aligned_cache: str, epochs: int
) -> None:
    ds = load_dataset(DATA)
    seeds = open_cache(aligned_cache).view_seeds[:]
    stream = BatchStream(
        ds,
        make_sampler("instance", ds.train.labels, ds.num_classes, 0),
        batch_size=16,
        device=torch.device("cpu"),
        seed=0,
        cached_views=seeds,
        schedule="epoch",
    )
    used = []
    for epoch in range(epochs):
        views = {int(v) for b in stream.epoch(epoch) for v in b.view}
        assert views == {epoch % 3}
        used.append(epoch % 3)
    counts = np.bincount(used, minlength=3)
    assert counts.max() - counts.min() <= 1  # no view skipped, none repeated before the others


def test_random_schedule_stays_an_option(aligned_cache: str) -> None:
    ds = load_dataset(DATA)
    stream = BatchStream(
        ds,
        make_sampler("instance", ds.train.labels, ds.num_classes, 0),
        batch_size=64,
        device=torch.device("cpu"),
        cached_views=open_cache(aligned_cache).view_seeds[:],
        schedule="random",
    )
    views = np.concatenate([b.view for b in stream.epoch(0)])
    assert len(set(views.tolist())) == 3


def test_cached_student_equals_its_online_twin(aligned_cache: str, tmp_path: Path) -> None:
    common = dict(method="kd", teacher="bsce", model="mlp", epochs=3, batch_size=16)
    cached = StudentSpec("cached", data_seed=VIEW_SEED, seed=1, **common)
    twin = StudentSpec("online", data_seed=VIEW_SEED, seed=1, online=True, **common)
    res = distill(
        aligned_cache, DATA, [cached, twin], tmp_path, device="cpu", plots=False,
        evaluate_teachers=False,
    )  # fmt: skip
    assert res.passes == 2  # replayed views and the online run are separate passes
    a, b = _w(tmp_path / "cached" / "model.pt"), _w(tmp_path / "online" / "model.pt")
    for k in a:  # equal to float rounding (the teacher ran on other batch shapes)
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    summary = json.loads((tmp_path / "summary.json").read_text())
    views = {s["name"]: s["views"] for s in summary["students"]}
    assert views == {"cached": "replay", "online": "online"}


def test_a_random_view_student_is_not_its_online_twin(aligned_cache: str, tmp_path: Path) -> None:
    """The twin test can fail: the random schedule trains on other views."""
    common = dict(method="kd", teacher="bsce", model="mlp", epochs=3, batch_size=16, seed=1)
    specs = [
        StudentSpec("random", data_seed=VIEW_SEED, view_schedule="random", **common),
        StudentSpec("online", data_seed=VIEW_SEED, online=True, **common),
    ]
    distill(
        aligned_cache, DATA, specs, tmp_path, device="cpu", plots=False, evaluate_teachers=False
    )
    a, b = _w(tmp_path / "random" / "model.pt"), _w(tmp_path / "online" / "model.pt")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 1e-3


def test_online_from_the_cli_and_bad_combinations(aligned_cache: str, tmp_path: Path) -> None:
    args = [
        "distill", aligned_cache, "--dataset", DATA, "--out", str(tmp_path / "o"),
        "--device", "cpu", "--epochs", "1", "--method", "kd", "--teacher", "bsce",
        "--online", "--json", "--no-plots",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    student = json.loads(result.stdout)["students"][0]
    assert student["views"] == "online" and student["status"] == "ok"
    with pytest.raises(UsageError, match="online = true"):
        StudentSpec("s", method="kd", online=True, views="replay")
    bad = CliRunner().invoke(app, [*args, "--teacher-model", "nonsense"])
    assert bad.exit_code == 2 and "NAME=MODEL" in bad.stderr


def test_verify_teacher_names_a_cache_from_another_checkpoint(
    aligned_cache: str, teacher_path: Path, tmp_path: Path
) -> None:
    base = ["verify", aligned_cache, "--dataset", DATA, "--device", "cpu", "--json"]
    good = CliRunner().invoke(app, [*base, "--teacher", f"bsce={teacher_path}", "--sample", "64"])
    assert good.exit_code == 0, good.output
    check = json.loads(good.stdout)["teacher_check"]
    assert check["sampled"] == 64 and check["top1_agreement"] == 1.0
    assert check["max_abs_delta"] < 1e-4 and check["bad"] == []
    # another checkpoint of the same architecture: every sampled view is named
    other = tmp_path / "other"
    from softlabels.engine.optim import OptimConfig
    from softlabels.teachers.train import TrainConfig, train

    cfg = TrainConfig(dataset=DATA, model="cnn1d", loss="ce", epochs=1, batch_size=32,
                      optim=OptimConfig(lr=0.05), seed=3)  # fmt: skip
    wrong = train(cfg, other, device="cpu").model_path
    bad = CliRunner().invoke(app, [*base, "--teacher", f"bsce={wrong}", "--sample", "32"])
    assert bad.exit_code == 1, bad.output
    report = json.loads(bad.stdout)
    assert not report["ok"] and len(report["teacher_check"]["bad"]) == 32
    assert all(p["kind"] == "teacher" for p in report["problems"])
    usage = CliRunner().invoke(app, ["verify", aligned_cache, "--teacher", "bsce=x"])
    assert usage.exit_code == 2 and "--dataset" in usage.stderr


def test_distill_refuses_views_made_under_another_recipe(
    aligned_cache: str, tmp_path: Path
) -> None:
    import shutil

    from softlabels.stores.cache import update_meta

    copy = tmp_path / "c.slc"
    shutil.copytree(aligned_cache, copy)
    views = dict(open_cache(str(copy)).meta["views"])
    views["recipe"] = {**views["recipe"], "shift": 99}
    update_meta(str(copy), "views", views, owner="test")
    spec = StudentSpec("s", method="kd", teacher="bsce", epochs=1)
    with pytest.raises(UsageError, match="augmentation recipe"):
        distill(str(copy), DATA, [spec], tmp_path / "r", device="cpu")
    own = StudentSpec("s", method="kd", teacher="bsce", epochs=1, views="own")
    distill(str(copy), DATA, [own], tmp_path / "r2", device="cpu", plots=False,
            evaluate_teachers=False)  # fmt: skip


def test_the_first_views_of_an_aligned_cache_are_a_smaller_cache(
    aligned_cache: str, teacher_path: Path, tmp_path: Path
) -> None:
    small = tmp_path / "v2.slc"
    cfg = DumpConfig(dataset=DATA, teachers=(TeacherSpec("bsce", str(teacher_path)),), views=2,
                     dtype="float32", chunk_size=64, seed=VIEW_SEED)  # fmt: skip
    dump(cfg, str(small), device="cpu")
    big = open_cache(aligned_cache)
    np.testing.assert_array_equal(
        big.read_view_seeds()[:, :2], open_cache(str(small)).read_view_seeds()
    )
    common = dict(method="kd", teacher="bsce", model="mlp", epochs=3, batch_size=16, seed=2)
    distill(aligned_cache, DATA, [StudentSpec("first2", replay_views=2, **common)],
            tmp_path / "a", device="cpu", plots=False, evaluate_teachers=False)  # fmt: skip
    distill(str(small), DATA, [StudentSpec("first2", **common)], tmp_path / "b", device="cpu",
            plots=False, evaluate_teachers=False)  # fmt: skip
    a, b = _w(tmp_path / "a" / "first2" / "model.pt"), _w(tmp_path / "b" / "first2" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UsageError, match="holds 3 view"):
        distill(aligned_cache, DATA, [StudentSpec("x", replay_views=4, **common)], tmp_path / "c",
                device="cpu")  # fmt: skip
