"""Distilling from sparse (top-k) teachers: targets rebuilt per batch on the device, every
logit method trains, and K = C - 1 gives the dense cache's students exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from softlabels.caches import open_cache
from softlabels.calibration import calibrate
from softlabels.engine.inputs import Batch
from softlabels.students import StudentSpec, distill
from softlabels.students.targets import SparseTargets, TeacherTargets, load_targets
from softlabels.teachers import DumpConfig, TeacherSpec, dump

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"
C = 10


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> dict[str, str]:
    """The trained teacher dumped dense and top-k (K = 3 and K = C - 1), float16, 2 views."""
    root = tmp_path_factory.mktemp("topk-students")
    out = {}
    for name, k in (("dense", None), ("k3", 3), ("k9", C - 1)):
        cfg = DumpConfig(
            dataset=DATA,
            teachers=(TeacherSpec("bsce", str(teacher_path)),),
            views=2,
            chunk_size=64,
            topk=k,
        )
        out[name] = str(root / f"{name}.slc")
        dump(cfg, out[name], device="cpu")
    return out


def _w(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _spec(name: str, method: str, **kw) -> StudentSpec:
    return StudentSpec(
        name=name, method=method, model="cnn1d", epochs=2, batch_size=32, data_seed=0, seed=1, **kw
    )


def test_sparse_targets_are_the_rule_s_dense_view_of_the_batch(caches) -> None:
    cache = open_cache(caches["k3"])
    dev = torch.device("cpu")
    rows = np.array([0, 5, 64, 100, 158])
    views = np.array([0, 1, 1, 0, 1])
    want = cache.teacher("bsce").dense_logits(rows)[np.arange(len(rows)), views]
    for budget in (None, 0):  # resident, and gathered from host memory per batch
        targets = load_targets(cache, "bsce", dev, budget=budget)
        assert isinstance(targets, SparseTargets) and targets.resident == (budget is None)
        assert targets.logits.shape == (159, 2, 3)  # K values per view: never [N, V, C]
        assert targets.num_views == 2
        got = targets.logits_for(rows, views)
        assert got.dtype == torch.float32 and got.shape == (5, C)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-5)
        batch = Batch(0, 0, rows, torch.zeros(5, 1), torch.zeros(5, dtype=torch.long), view=views)
        assert torch.equal(targets.batch_logits(batch), got)
    dense = load_targets(open_cache(caches["dense"]), "bsce", dev)
    assert type(dense) is TeacherTargets


def test_kd_on_k_c_minus_1_equals_the_dense_cache(caches, tmp_path: Path) -> None:
    spec = _spec("kd", "kd", teacher="bsce", tau=4.0)
    for name in ("dense", "k9"):
        distill(caches[name], DATA, [spec], tmp_path / name, device="cpu", plots=False,
                evaluate_teachers=False)  # fmt: skip
    dense, sparse = (
        _w(tmp_path / "dense" / "kd" / "model.pt"),
        _w(tmp_path / "k9" / "kd" / "model.pt"),
    )
    # K = C - 1: the rest is one logit, its log-sum-exp is itself, so the rule's dense view is
    # the dense cache's logits bit for bit, and so are the students' weights.
    assert dense.keys() == sparse.keys()
    assert all(torch.equal(sparse[key], dense[key]) for key in dense)


def test_every_logit_method_trains_from_a_sparse_cache(caches, tmp_path: Path) -> None:
    specs = [
        _spec("kd", "kd", teacher="bsce"),
        _spec("dive", "dive", teacher="bsce", tau=3.0),
        _spec("bkd", "bkd", teacher="bsce", mixup=0.2, drw_epoch=1),
        _spec("dkd", "dkd", teacher="bsce"),
    ]
    result = distill(caches["k3"], DATA, specs, tmp_path / "all", device="cpu", plots=False,
                     evaluate_teachers=False)  # fmt: skip
    assert {s["name"] for s in result.students} == {"kd", "dive", "bkd", "dkd"}
    for s in result.students:
        assert 0.0 <= s["top1"] <= 1.0
    # a K = 3 teacher is not the dense one: its students differ
    distill(caches["dense"], DATA, specs[:1], tmp_path / "dense", device="cpu", plots=False,
            evaluate_teachers=False)  # fmt: skip
    a, b = _w(tmp_path / "all" / "kd" / "model.pt"), _w(tmp_path / "dense" / "kd" / "model.pt")
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_ssd_from_a_calibrated_sparse_teacher(caches, tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "k3.slc"
    shutil.copytree(caches["k3"], path)
    calibrate(str(path), "bsce", "lws", epochs=1, batch_size=64)
    t = open_cache(str(path)).teacher("bsce+lws")
    assert (t.storage, t.k) == ("topk", 3)
    spec = _spec("ssd", "ssd", teacher="bsce+lws")
    result = distill(str(path), DATA, [spec], tmp_path / "ssd", device="cpu", plots=False,
                     evaluate_teachers=False)  # fmt: skip
    assert result.students[0]["name"] == "ssd"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sparse_targets_on_cuda_give_the_bytes_of_the_cpu(caches) -> None:
    """Resident on the device and gathered through pinned host memory: the same [B, C]."""
    cache = open_cache(caches["k3"])
    rows, views = np.array([0, 7, 70, 158]), np.array([1, 0, 1, 0])
    want = load_targets(cache, "bsce", torch.device("cpu")).logits_for(rows, views)
    for budget in (None, 0):
        targets = load_targets(cache, "bsce", torch.device("cuda"), budget=budget)
        got = targets.logits_for(rows, views)
        assert got.device.type == "cuda" and torch.equal(got.cpu(), want)
