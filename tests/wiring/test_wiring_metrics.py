"""ECE everywhere is the 15-bin one (README: "ECE (15 bins)"), checked against an
independent numpy computation on predictions where 10 and 15 bins disagree: the metric
functions' defaults, ``softlabels eval``, the students of ``softlabels distill`` and the
before/after report of ``softlabels calibrate``."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from softlabels_wiring_helpers import CLASSES, DATA, SIGNAL, state_dict

import softlabels
from softlabels.engine.optim import OptimConfig
from softlabels.metrics import evaluate_logits, expected_calibration_error
from softlabels.models import create_model
from softlabels.teachers import DumpConfig, TeacherSpec, dump
from softlabels.teachers.train import TrainConfig, train


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    """Equal-width bins (lo, hi] over [0, 1] (confidence 0 in the first), weighted
    |accuracy - mean confidence| per bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b, (lo, hi) in enumerate(itertools.pairwise(edges)):
        inside = (confidence > lo) & (confidence <= hi)
        if b == 0:
            inside |= confidence == 0
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def _ece_of_logits(logits: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    p = _softmax(logits.astype(np.float64))
    return _ece(p.max(axis=1), (p.argmax(axis=1) == labels).astype(np.float64), bins)


def _differs(logits: np.ndarray, labels: np.ndarray) -> None:
    """Premise: 10 bins would give another number than 15 here."""
    e15, e10 = _ece_of_logits(logits, labels, 15), _ece_of_logits(logits, labels, 10)
    assert abs(e15 - e10) > 1e-4, (e15, e10)


def test_metric_functions_use_15_bins() -> None:
    # Two classes, confidences uniform in (0.5, 1); a sample is right exactly when its
    # confidence lies in an even 15-bin, so 15 bins see large gaps that 10 bins average out.
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, size=2000)
    correct = (np.floor(conf * 15).astype(np.int64) % 2 == 0).astype(np.float64)
    e15, e10 = _ece(conf, correct, 15), _ece(conf, correct, 10)
    assert e15 - e10 > 0.1, (e15, e10)
    assert expected_calibration_error(conf, correct) == pytest.approx(e15, abs=1e-12)
    logits = np.stack([np.log(conf), np.log1p(-conf)], axis=1)  # softmax -> (conf, 1 - conf)
    labels = np.where(correct > 0, 0, 1)
    got = evaluate_logits(logits, labels, np.array([50, 5]))["ece"]
    assert got == pytest.approx(e15, abs=1e-9)


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained ``mlp``: over-confident in some bins, under-confident in others. (A
    random model is over-confident in every bin, and then its ECE is mean confidence minus
    accuracy whatever the binning.)"""
    config = TrainConfig(
        dataset=DATA, model="mlp", epochs=4, batch_size=32, optim=OptimConfig(lr=0.05),
        eval_every=4,
    )  # fmt: skip
    return Path(train(config, tmp_path_factory.mktemp("trained"), device="cpu").model_path)


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory: pytest.TempPathFactory, trained_teacher: Path) -> Path:
    out = tmp_path_factory.mktemp("trained-cache") / "trained.slc"
    config = DumpConfig(
        dataset=DATA, teachers=(TeacherSpec("s", str(trained_teacher)),), dtype="float32"
    )
    dump(config, str(out), device="cpu")
    return out


def _test_logits(checkpoint: Path, dataset) -> np.ndarray:
    """Test-split logits of an ``mlp`` checkpoint, computed here."""
    model = create_model("mlp", num_classes=CLASSES, in_channels=1, in_features=SIGNAL)
    model.load_state_dict(state_dict(checkpoint))
    model.eval()
    with torch.no_grad():
        x = dataset.clean(dataset.test.load(np.arange(len(dataset.test))))
        return model(x).double().numpy()


def test_eval_and_distill_report_the_15_bin_ece(
    cli, trained_teacher: Path, trained_cache: Path, dataset, tmp_path: Path
) -> None:
    labels = dataset.test.labels
    logits = _test_logits(trained_teacher, dataset)
    _differs(logits, labels)
    teacher_ece = _ece_of_logits(logits, labels)

    result = cli("eval", "--dataset", DATA, "--model", trained_teacher, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ece"] == pytest.approx(teacher_ece, abs=1e-9)

    result = cli(
        "distill", trained_cache, "--dataset", DATA, "--out", tmp_path / "d", "--method", "kd",
        "--teacher", "s", "--model", "mlp", "--lr", 0.05, "--epochs", 2, "--batch-size", 32,
        "--no-plots", "--device", "cpu", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["teachers"][0]["ece"] == pytest.approx(teacher_ece, abs=1e-9)
    student = _test_logits(Path(summary["students"][0]["model_path"]), dataset)
    _differs(student, labels)
    assert summary["students"][0]["ece"] == pytest.approx(_ece_of_logits(student, labels), abs=1e-9)


def test_calibrate_reports_the_15_bin_ece(cli, trained_cache: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "c.slc"
    shutil.copytree(trained_cache, cache_dir)
    cache = softlabels.open_cache(str(cache_dir))
    logits = np.asarray(cache.teacher("s").logits[...], dtype=np.float64)  # [N, 1, C]
    flat = logits.reshape(-1, logits.shape[-1])
    labels = np.repeat(np.asarray(cache.labels), logits.shape[1])
    _differs(flat, labels)
    result = cli("calibrate", cache_dir, "--teacher", "s", "--method", "tau-norm", "--json")
    assert result.exit_code == 0, result.stderr
    before = json.loads(result.stdout)["evaluation"]["before"]
    # "before" is the source classifier on the cached features, i.e. the cached logits.
    assert before["ece"] == pytest.approx(_ece_of_logits(flat, labels), abs=1e-6)
