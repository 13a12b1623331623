"""Mixed views (dump --mixup/--cutmix): drawn from each view's seed, stored, replayed exactly.

Every mixed input is rebuilt here with numpy from the cache's stored (partner, lam, box)
and the dataset's public ``augment`` (the partner's input is its own unmixed view of the
same index), and compared with what the dump's teacher saw, what students train on (read
off the model input with a forward pre-hook) and what an online run draws.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from softlabels_wiring_helpers import CLASSES, DATA, SEED, SIGNAL, TINY_LR, losses, training_inputs

import softlabels
from softlabels.data import load_dataset
from softlabels.data.mixing import draw
from softlabels.engine.inputs import BatchStream
from softlabels.engine.samplers import make_sampler
from softlabels.models import create_model
from softlabels.students import StudentSpec, distill
from softlabels.teachers import DumpConfig, TeacherSpec, dump

VIEWS = 3
MIX = {"mixup": 0.4, "cutmix": 1.0, "mix_prob": 0.7}


def _config(teacher: Path, **kw: Any) -> DumpConfig:
    kw = {"views": VIEWS, "dtype": "float32", "chunk_size": 64, **MIX, **kw}
    return DumpConfig(dataset=DATA, teachers=(TeacherSpec("t", str(teacher)),), **kw)


@pytest.fixture(scope="module")
def mixed_cache(tmp_path_factory: pytest.TempPathFactory, mlp_teacher: Path) -> str:
    out = tmp_path_factory.mktemp("mixed") / "m.slc"
    dump(_config(mlp_teacher), str(out), device="cpu")
    return str(out)


def _teacher(path: Path) -> torch.nn.Module:
    model = create_model("mlp", num_classes=CLASSES, in_channels=1, in_features=SIGNAL)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return model.eval()


def _numpy_mix(own: np.ndarray, other: np.ndarray, lam: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Mixup ``lam x_i + (1 - lam) x_j`` or CutMix (``x_j`` on ``[x0, x1)``), per sample."""
    out = own.copy()
    for b in range(len(own)):
        if box[b, 2] >= 0:
            out[b, ..., box[b, 2] : box[b, 3]] = other[b, ..., box[b, 2] : box[b, 3]]
        else:
            w = np.float32(lam[b])
            out[b] = w * own[b] + (np.float32(1) - w) * other[b]
    return out


def _tables(url: str) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """(mixed inputs [N, V, 1, L], unmixed inputs [N, V, 1, L], (partner, lam, box))."""
    cache = softlabels.open_cache(url)
    ds = load_dataset(DATA)
    seeds = np.asarray(cache.view_seeds[...])
    n, v = seeds.shape
    raw = ds.train.load(np.arange(n))
    plain = np.stack(
        [ds.augment(raw, seeds[:, k], strength="standard").numpy() for k in range(v)], axis=1
    )
    arrays = cache.read_mix()
    assert arrays is not None
    partner, lam, box = arrays
    mixed = plain.copy()
    for k in range(v):
        m = partner[:, k] >= 0
        mixed[m, k] = _numpy_mix(plain[m, k], plain[partner[m, k], k], lam[m, k], box[m, k])
    return mixed, plain, arrays


def test_stored_mix_follows_the_rule_and_the_teacher_saw_the_numpy_mix(
    mixed_cache: str, mlp_teacher: Path
) -> None:
    cache = softlabels.open_cache(mixed_cache)
    assert cache.metadata.format == 2
    assert cache.mixing is not None and cache.mixing.to_dict() | {} == {
        "mixup": 0.4, "cutmix": 1.0, "prob": 0.7, "rule": "partner-from-view-seed",
        "rule_version": 1,
    }  # fmt: skip
    mixed, plain, (partner, lam, box) = _tables(mixed_cache)
    n = cache.num_samples
    assert partner.dtype == np.int32 and lam.dtype == np.float32 and box.dtype == np.int32
    assert partner.shape == lam.shape == (n, VIEWS) and box.shape == (n, VIEWS, 4)
    on = partner >= 0
    # Binomial: 477 views, P = 0.7 -> sd 0.021; CutMix half of the mixed ones.
    assert abs(on.mean() - 0.7) < 0.1
    cut = on & (box[..., 2] >= 0)
    assert 0.35 < cut.sum() / on.sum() < 0.65
    assert (partner[on] < n).all() and (partner >= -1).all()
    # Not mixed: lam 1, no box. Mixup: no box, lam in [0, 1]. CutMix: 1-D interval, lam = its
    # complement's real share.
    assert (lam[~on] == 1).all() and (box[~on] == -1).all()
    assert (box[on & ~cut] == -1).all() and ((lam >= 0) & (lam <= 1)).all()
    assert (box[cut][:, :2] == -1).all()
    x0, x1 = box[cut][:, 2], box[cut][:, 3]
    assert ((x0 >= 0) & (x0 <= x1) & (x1 <= SIGNAL)).all()
    np.testing.assert_array_equal(lam[cut], (1 - (x1 - x0) / SIGNAL).astype(np.float32))
    # Premise: mixed views are other inputs than the unmixed ones.
    assert np.abs(mixed[on] - plain[on]).reshape(on.sum(), -1).max(axis=1).mean() > 1e-2
    # The teacher's stored outputs are those of the numpy-mixed inputs.
    stored = np.asarray(cache.teacher("t").logits[...])
    with torch.no_grad():
        rerun = _teacher(mlp_teacher)(torch.from_numpy(mixed.reshape(n * VIEWS, 1, SIGNAL)))
    np.testing.assert_allclose(rerun.numpy().reshape(stored.shape), stored, atol=1e-5, rtol=0)


def _cache_files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel != ".softlabels.lock":
                out[rel] = (Path(dirpath) / name).read_bytes()
    return out


def test_mix_depends_on_the_view_seed_only_not_chunks_or_batches(
    mixed_cache: str, mlp_teacher: Path, tmp_path: Path
) -> None:
    """Other chunk and batch sizes: the same (partner, lam, box) of every (row, view), also
    drawn for all rows at once; and the same seed twice gives the same bytes."""
    other = tmp_path / "other.slc"
    dump(_config(mlp_teacher, chunk_size=17, batch_size=5), str(other), device="cpu")
    a, b = softlabels.open_cache(mixed_cache), softlabels.open_cache(str(other))
    for x, y in zip(a.read_mix() or (), b.read_mix() or (), strict=True):
        np.testing.assert_array_equal(x, y)
    seeds = a.read_view_seeds()
    partner, lam, box = a.read_mix() or ()
    assert a.mixing is not None
    for v in range(VIEWS):
        whole = draw(a.mixing, seeds[:, v], a.num_samples, (SIGNAL,))
        np.testing.assert_array_equal(whole.partner, partner[:, v])
        np.testing.assert_array_equal(whole.lam, lam[:, v])
        np.testing.assert_array_equal(whole.box, box[:, v])
    again = tmp_path / "again.slc"
    dump(_config(mlp_teacher), str(again), device="cpu")
    one, two = _cache_files(Path(mixed_cache)), _cache_files(again)
    assert sorted(one) == sorted(two)
    assert [k for k in one if one[k] != two[k]] == []
    assert any(k.startswith("views/partner/c/") for k in one)


@pytest.mark.parametrize("sampler", ["instance", "class-balanced", "sqrt"])
@pytest.mark.parametrize("batch_size", [16, 50])
@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("online", [False, True])
def test_students_get_the_stored_mix_whatever_the_batch_sampler_and_ranks(
    mixed_cache: str, sampler: str, batch_size: int, world: int, online: bool
) -> None:
    """Replayed (cached arrays) or online (drawn from the fresh views' seeds): each batch's
    mixed inputs, partners and lams are those stored for its (row, view)."""
    cache = softlabels.open_cache(mixed_cache)
    ds = load_dataset(DATA)
    mixed, _plain, (partner, lam, _box) = _tables(mixed_cache)
    seen = 0
    for rank in range(world):
        stream = BatchStream(
            ds,
            make_sampler(sampler, ds.train.labels, ds.num_classes, 3),
            batch_size=batch_size,
            device=torch.device("cpu"),
            seed=int(cache.views.seed or 0),
            cached_views=None if online else cache.read_view_seeds(),
            schedule="epoch",
            rank=rank,
            world=world,
            mixing=cache.mixing,
            cached_mix=None if online else cache.read_mix(),
        )
        for epoch in range(VIEWS):
            for batch in stream.epoch(epoch):
                rows, v = batch.rows, np.full(len(batch.rows), epoch)
                assert batch.mix is not None
                np.testing.assert_array_equal(batch.mix.partner, partner[rows, v])
                np.testing.assert_array_equal(batch.mix.lam, lam[rows, v])
                np.testing.assert_allclose(batch.x.numpy(), mixed[rows, v], atol=1e-6, rtol=0)
                labels = batch.labels
                mine = partner[rows, v] >= 0
                want = np.where(
                    mine, ds.train.labels[np.maximum(partner[rows, v], 0)], ds.train.labels[rows]
                )
                np.testing.assert_array_equal(labels.partner.numpy(), want)
                np.testing.assert_array_equal(labels.lam.numpy(), lam[rows, v])
                seen += int(mine.sum())
    assert seen > 50


def test_replayed_loss_is_zero_only_when_input_and_target_are_the_same_mixed_view(
    mixed_cache: str, mlp_teacher: Path, tmp_path: Path
) -> None:
    """Student = teacher (BN-free mlp, lr ~ 0), KD at T = 1, alpha = 1: the loss is 0, the
    inputs are the mixed views, and the unmixed view's target would have cost > 0."""
    mixed, plain, (partner, _lam, _box) = _tables(mixed_cache)
    n = len(mixed)
    spec = StudentSpec(
        name="same", model="mlp", method="kd", teacher="t", tau=1.0, alpha=1.0, lr=TINY_LR,
        epochs=VIEWS, batch_size=32, seed=SEED,
    )  # fmt: skip
    out = tmp_path / "run"
    with training_inputs() as inputs:
        distill(mixed_cache, DATA, [spec], out, device="cpu", plots=False, evaluate_teachers=False)
    table = torch.from_numpy(mixed.reshape(n * VIEWS, SIGNAL)).double()
    unmixed = torch.from_numpy(plain.reshape(n * VIEWS, SIGNAL)).double()
    steps = n // 32
    teacher = _teacher(mlp_teacher)
    stored = np.asarray(softlabels.open_cache(mixed_cache).teacher("t").logits[...], np.float64)
    mismatch: list[float] = []
    moved: list[bool] = []
    for i, x in enumerate(inputs):
        d, idx = torch.cdist(x.double(), table).min(dim=1)
        assert float(d.max()) < 1e-5, "a student input is no stored mixed view"
        rows, v = idx.numpy() // VIEWS, idx.numpy() % VIEWS
        assert (v == i // steps).all()  # epoch e replays view e
        on = partner[rows, v] >= 0
        assert on.any()
        # ... and not the unmixed view of that (row, view)
        far = (x.double() - unmixed[idx]).abs().amax(dim=1).numpy()
        moved.extend((far[on] > 1e-3).tolist())  # (lam ~ 1 or an empty box: barely)
        # The target of the unmixed view, on this input, would cost a KL > 0.
        with torch.no_grad():
            z = teacher(x.reshape(-1, 1, SIGNAL)).double().numpy()
            z_plain = teacher(unmixed[idx].float().reshape(-1, 1, SIGNAL)).double().numpy()
        np.testing.assert_allclose(z, stored[rows, v], atol=1e-4, rtol=0)
        mismatch.append(_kl(z_plain[on], z[on]).mean())
    assert np.mean(moved) > 0.75
    assert np.mean(mismatch) > 1e-4
    recorded = losses(out / "metrics.parquet", "same")
    assert len(recorded) == VIEWS and max(recorded) < 1e-8, recorded


def _kl(target: np.ndarray, student: np.ndarray) -> np.ndarray:
    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    lq, lp = log_softmax(target), log_softmax(student)
    return (np.exp(lq) * (lq - lp)).sum(axis=1)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_cached_student_on_mixed_views_equals_its_online_twin(
    mixed_cache: str, tmp_path: Path
) -> None:
    """V = epochs, float32 targets: KD (with its CE part on the mixed labels) and BKD with
    mixup end with the weights of their online twins; BKD records exact mixed targets and
    mixes nothing more (the weights of BKD without the option)."""
    seed = int(softlabels.open_cache(mixed_cache).views.seed or 0)
    common = dict(model="mlp", teacher="t", epochs=VIEWS, batch_size=16, data_seed=seed, seed=1)
    specs = [
        StudentSpec("kd", method="kd", alpha=0.5, **common),
        StudentSpec("kd-online", method="kd", alpha=0.5, online=True, **common),
        StudentSpec("bkd", method="bkd", mixup=0.4, **common),
        StudentSpec("bkd-online", method="bkd", mixup=0.4, online=True, **common),
        StudentSpec("bkd-plain", method="bkd", **common),  # no mixup option
    ]
    distill(mixed_cache, DATA, specs, tmp_path, device="cpu", plots=False, evaluate_teachers=False)
    for name in ("kd", "bkd"):
        a = _weights(tmp_path / name / "model.pt")
        b = _weights(tmp_path / f"{name}-online" / "model.pt")
        for k in a:  # equal to float rounding (the teacher ran on other batch shapes)
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    # No double mix: BKD's mixup adds nothing to inputs that are mixed views already.
    a, b = _weights(tmp_path / "bkd" / "model.pt"), _weights(tmp_path / "bkd-plain" / "model.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    record = {s["name"]: s.get("mixup_target") for s in summary["students"]}
    assert record["bkd"] == record["bkd-online"] == "exact"


def test_bkd_on_an_unmixed_cache_keeps_mixing_targets(views_cache: str, tmp_path: Path) -> None:
    spec = StudentSpec("bkd", method="bkd", mixup=0.4, model="mlp", epochs=1, batch_size=32)
    distill(views_cache, DATA, [spec], tmp_path, device="cpu", plots=False, evaluate_teachers=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["students"][0]["mixup_target"] == "mixed-targets"
    assert softlabels.open_cache(views_cache).metadata.format == 1  # unmixed: format 1


def test_cached_dataset_yields_the_mixed_view_and_both_labels(mixed_cache: str) -> None:
    mixed, _plain, (partner, lam, _box) = _tables(mixed_cache)
    data = softlabels.CachedDataset(DATA, mixed_cache, teacher="t")
    assert data.mixed
    stored = np.asarray(softlabels.open_cache(mixed_cache).teacher("t").logits[...])
    labels = load_dataset(DATA).train.labels
    for epoch in range(VIEWS):
        data.set_epoch(epoch)
        rows = np.arange(0, len(data), 7)
        items = data.__getitems__(rows.tolist())
        for r, (x, y, t, index, py, w) in zip(rows, items, strict=True):
            assert index == r and y == labels[r]
            np.testing.assert_allclose(x.numpy(), mixed[r, epoch], atol=1e-6, rtol=0)
            np.testing.assert_array_equal(t.numpy(), stored[r, epoch])
            j = partner[r, epoch]
            assert py == (labels[j] if j >= 0 else y) and w == float(lam[r, epoch])


def test_inspect_verify_and_teacher_recheck_cover_mixed_views(
    mixed_cache: str, mlp_teacher: Path, tmp_path: Path, cli: Any
) -> None:
    shown = cli("inspect", mixed_cache, "--json")
    assert shown.exit_code == 0
    info = json.loads(shown.stdout)
    partner = softlabels.open_cache(mixed_cache).read_mix()[0]  # type: ignore[index]
    assert info["format"] == 2
    assert info["mixing"]["prob"] == 0.7 and info["mixing"]["cutmix"] == 1.0
    assert info["mixing"]["fraction_mixed"] == pytest.approx(float((partner >= 0).mean()))
    table = cli("inspect", mixed_cache)
    assert table.exit_code == 0 and "mixed views" in table.stdout
    rerun = cli("verify", mixed_cache, "--dataset", DATA, "--teacher", f"t={mlp_teacher}",
                "--sample", 477, "--json")  # fmt: skip
    assert rerun.exit_code == 0, rerun.stdout
    # Integrity: a damaged chunk of views/lam is named.
    copy = tmp_path / "damaged.slc"
    shutil.copytree(mixed_cache, copy)
    chunk = copy / "views" / "lam" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    checked = cli("verify", copy, "--json")
    assert checked.exit_code == 1
    assert "views/lam" in checked.stdout


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--views", 2, "--mixup", -1, "--mix-prob", 0.5], "--mixup ALPHA >= 0"),
        (["--views", 2, "--cutmix", 1, "--mix-prob", 1.5], "--mix-prob in [0, 1]"),
        (["--views", 2, "--mix-prob", 0.5], "--mixup or --cutmix ALPHA > 0"),
        (["--views", 0, "--mixup", 1, "--mix-prob", 0.5], "--views K >= 1"),
        (["--views", 2, "--cutmix", 1], "--mix-prob P > 0"),
    ],
)
def test_bad_mixing_flags_are_one_line_exit_2(
    flags: list[Any], words: str, mlp_teacher: Path, tmp_path: Path, cli: Any
) -> None:
    result = cli("dump", "--dataset", DATA, "--teacher", f"t={mlp_teacher}", "--out",
                 tmp_path / "c.slc", "--device", "cpu", *flags)  # fmt: skip
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert not (tmp_path / "c.slc").exists()


def test_a_cache_without_mixing_keeps_format_1_and_its_keys(views_cache: str) -> None:
    """Unmixed dumps write what they wrote before mixed views existed (format 1, no
    ``mixing`` key, no mix arrays), so their bytes and config keys do not change."""
    attrs = json.loads((Path(views_cache) / "zarr.json").read_text())["attributes"]["softlabels"]
    assert attrs["format"] == 1
    assert "mixing" not in attrs["views"]
    assert not any(k in attrs["config"] for k in ("mixup", "cutmix", "mix_prob"))
    assert not (Path(views_cache) / "views" / "partner").exists()


def test_mixed_views_of_an_unknown_rule_are_refused(
    mixed_cache: str, tmp_path: Path, cli: Any
) -> None:
    copy = tmp_path / "future.slc"
    shutil.copytree(mixed_cache, copy)
    doc = json.loads((copy / "zarr.json").read_text())
    doc["attributes"]["softlabels"]["views"]["mixing"]["rule_version"] = 99
    (copy / "zarr.json").write_text(json.dumps(doc))
    result = cli("distill", copy, "--dataset", DATA, "--out", tmp_path / "run", "--method",
                 "kd", "--model", "mlp", "--epochs", 1, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "version 99" in lines[0], result.stderr
