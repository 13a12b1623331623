"""Calibration from a cache: identical to the same calibration on features from running the
backbone, stored as a teacher that reads, verifies and inspects like any other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from softlabels_calibration_helpers import BATCH, DATASET

import softlabels
from softlabels.calibration import Classifier, calibrate, fit_crt, fit_lws, tau_norm
from softlabels.inspection import describe
from softlabels.models import load_model

KW: dict[str, Any] = {"epochs": 3, "lr": 0.1, "batch_size": 64, "seed": 7}


def _backbone(spec: str, dataset: Any, split: str = "train") -> tuple[torch.Tensor, Classifier]:
    """Features of ``spec`` on the clean inputs, by running its ``features()`` (no cache)."""
    lm = load_model(spec, num_classes=dataset.num_classes, in_channels=1)
    net = lm.module
    part = dataset.split(split)
    feats = []
    with torch.inference_mode():
        for start in range(0, len(part), BATCH):  # the dump's batches (chunks are 2 batches)
            rows = np.arange(start, min(len(part), start + BATCH))
            feats.append(net.features(dataset.clean(part.load(rows))))
    w, b = lm.classifier()
    kind = lm.arch["classifier"]
    return torch.cat(feats), Classifier(w, b, kind=kind, cosine_scale=lm.arch["cosine_scale"])


def _stored(cache: Path, name: str) -> tuple[Any, np.ndarray]:
    t = softlabels.open_cache(str(cache)).teacher(name)
    return t, t.reader("logits").read_all()


@pytest.fixture(scope="module")
def backbone_a(dataset: Any) -> tuple[torch.Tensor, Classifier]:
    return _backbone("cnn1d", dataset)


def test_cached_features_are_the_backbone_features(reference: Path, backbone_a, dataset) -> None:
    feats, cls = backbone_a
    cached = softlabels.open_cache(str(reference)).teacher("a")
    np.testing.assert_array_equal(cached.reader("features").read_all()[:, 0], feats.numpy())
    w, b = cached.classifier
    np.testing.assert_array_equal(w, cls.weight.numpy())
    np.testing.assert_array_equal(b, cls.bias.numpy())


def test_lws_from_cache_equals_lws_on_backbone_features(cache: Path, backbone_a, dataset) -> None:
    feats, cls = backbone_a
    labels = torch.from_numpy(dataset.train.labels)
    result = calibrate(str(cache), "a", "lws", **KW)
    direct = fit_lws(feats, labels, cls, **KW)
    t, logits = _stored(cache, "a+lws")
    assert result.teacher == "a+lws" and result.losses == direct.losses
    np.testing.assert_array_equal(
        np.asarray(t.cache.group["teachers/a+lws/lws_scale"][...]),
        direct.classifier.lws_scale.numpy(),
    )
    with torch.inference_mode():
        expected = direct.classifier(feats).numpy()
    np.testing.assert_array_equal(logits[:, 0], expected)
    # LWS keeps the source layer; its arrays are stored unchanged next to the scale.
    w, b = t.classifier
    np.testing.assert_array_equal(w, cls.weight.numpy())
    np.testing.assert_array_equal(b, cls.bias.numpy())


def test_crt_and_tau_norm_from_cache_equal_the_backbone(cache: Path, backbone_a, dataset) -> None:
    feats, cls = backbone_a
    labels = torch.from_numpy(dataset.train.labels)
    calibrate(str(cache), "a", "crt", **KW)
    direct = fit_crt(feats, labels, 10, **KW)
    t, logits = _stored(cache, "a+crt")
    w, b = t.classifier
    np.testing.assert_array_equal(w, direct.classifier.weight.numpy())
    np.testing.assert_array_equal(b, direct.classifier.bias.numpy())
    with torch.inference_mode():
        np.testing.assert_array_equal(logits[:, 0], direct.classifier(feats).numpy())

    result = calibrate(str(cache), "a", "tau-norm", tau_norm_power=0.5)
    normed = tau_norm(cls, 0.5)
    t, logits = _stored(cache, "a+tau-norm")
    np.testing.assert_array_equal(t.classifier[0], normed.weight.numpy())
    # The reference default drops the bias (this pinned the old default, bias kept, before).
    assert cls.bias.abs().sum() > 0
    np.testing.assert_array_equal(t.classifier[1], np.zeros_like(cls.bias.numpy()))
    assert t.info["calibration"]["formula"] == "W v"
    with torch.inference_mode():
        np.testing.assert_array_equal(logits[:, 0], normed(feats).numpy())
        np.testing.assert_allclose(
            logits[:, 0], (feats @ normed.weight.T).numpy(), rtol=1e-5, atol=1e-5
        )
    assert result.steps == 0 and result.epochs is None and result.tau_norm_power == 0.5


def test_cosine_teacher(cache: Path, cosine_checkpoint: Path, dataset) -> None:
    feats, cls = _backbone(str(cosine_checkpoint), dataset)
    assert cls.kind == "cosine" and cls.cosine_scale == 16.0
    labels = torch.from_numpy(dataset.train.labels)
    result = calibrate(str(cache), "cos", "lws", **KW)
    direct = fit_lws(feats, labels, cls, **KW)
    t, logits = _stored(cache, "cos+lws")
    with torch.inference_mode():
        np.testing.assert_array_equal(logits[:, 0], direct.classifier(feats).numpy())
    assert result.classifier_kind == "cosine"
    cal = t.info["calibration"]
    assert cal["formula"] == "lws_scale * (cosine_scale * normalize(W) normalize(v))"
    assert t.info["classifier_kind"] == "cosine" and t.info["cosine_scale"] == 16.0
    calibrate(str(cache), "cos", "crt", **KW)
    t, _ = _stored(cache, "cos+crt")
    assert not t.classifier[1].any()  # a cosine layer has no bias


def test_calibrated_teacher_reads_like_any_other(cache: Path, cli) -> None:
    result = calibrate(str(cache), "a", "lws", **KW)
    c = softlabels.open_cache(str(cache))
    assert c.teacher_names == ["a", "cos", "a+lws"]
    assert c.verify() == [] and c.is_complete()
    t = c.teacher("a+lws")
    src = c.teacher("a")
    assert t.logits.shape == src.logits.shape and t.logits.dtype == src.logits.dtype
    assert t.features is None and t.classifier is not None
    assert any(r.endswith("+a+lws.json") for r in c.manifest.records)
    info = t.info
    assert info["model"] == src.info["model"] and info["arch"] == src.info["arch"]
    assert info["features"] is False and info["classifier"] is True
    cal = info["calibration"]
    assert cal | {"losses": None, "evaluation": None, "softlabels": None} == {
        "method": "lws", "source": "a", "epochs": 3, "lr": 0.1, "batch_size": 64,
        "weight_decay": 5e-4, "momentum": 0.9, "schedule": "cosine",
        "sampler": "class-balanced", "seed": 7, "tau_norm_power": None, "samples": 159,
        "formula": "lws_scale * (W v + b)", "losses": None, "evaluation": None,
        "softlabels": None, "keep_bias": None,
        "differs_from_reference": ["lr 0.1 (reference 0.2)"],  # KW trains with lr 0.1
    }  # fmt: skip
    assert cal["losses"] == result.losses and cal["evaluation"]["split"] == "train"
    # inspect and verify through the commands.
    desc = describe(c)
    row = next(r for r in desc["teachers"] if r["name"] == "a+lws")
    assert row["complete"] and row["calibration"]["method"] == "lws"
    shown = cli("inspect", cache, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert [r["name"] for r in json.loads(shown.stdout)["teachers"]] == ["a", "cos", "a+lws"]
    checked = cli("verify", cache, "--dataset", DATASET, "--json")
    assert checked.exit_code == 0 and json.loads(checked.stdout)["ok"] is True


def test_deterministic_and_seeded(cache: Path) -> None:
    calibrate(str(cache), "a", "crt", **KW)
    _, first = _stored(cache, "a+crt")
    result = calibrate(str(cache), "a", "crt", **KW, overwrite=True)
    _, again = _stored(cache, "a+crt")
    np.testing.assert_array_equal(first, again)
    assert result.replaced is True
    calibrate(str(cache), "a", "crt", **(KW | {"seed": 8}), overwrite=True)
    _, other = _stored(cache, "a+crt")
    assert not np.array_equal(first, other)
    assert softlabels.open_cache(str(cache)).verify() == []


def test_training_evaluation_is_that_of_the_cached_features(cache: Path) -> None:
    from softlabels.metrics import evaluate_logits

    result = calibrate(str(cache), "a", "tau-norm")
    c = softlabels.open_cache(str(cache))
    counts = np.asarray(c.dataset["train_counts"])
    for key, name in (("before", "a"), ("after", "a+tau-norm")):
        z = c.teacher(name).reader("logits").read_all()[:, 0]
        ref = evaluate_logits(z, c.labels, counts)
        got = result.evaluation[key]
        assert got["top1"] == pytest.approx(ref["top1"])
        assert got["ece"] == pytest.approx(ref["ece"])
        assert got["balanced"] == pytest.approx(
            np.mean([a for a in ref["per_class"] if a is not None])
        )
        assert got["groups"] == pytest.approx(ref["groups"])


def test_augmented_views_float16(tmp_path: Path) -> None:
    """Every (row, view) is a sample; the stored logits keep the source's dtype and shape."""
    from softlabels.teachers import DumpConfig, dump, parse_teacher

    out = tmp_path / "views.slc"
    config = DumpConfig(
        dataset=DATASET, teachers=(parse_teacher("a=cnn1d"),), views=2, dtype="float16",
        chunk_size=64, batch_size=BATCH,
    )  # fmt: skip
    dump(config, str(out), device="cpu")
    result = calibrate(str(out), "a", "lws", **KW)
    c = softlabels.open_cache(str(out))
    src = c.teacher("a")
    feats = torch.from_numpy(src.reader("features").read_all())
    assert feats.shape[:2] == (159, 2)
    w, b = (torch.from_numpy(a) for a in src.classifier)
    direct = fit_lws(feats, torch.from_numpy(c.labels), Classifier(w, b), **KW)
    assert result.losses == direct.losses
    assert result.evaluation["before"]["num_samples"] == 2 * 159
    t = c.teacher("a+lws")
    logits = t.reader().read_all()
    assert logits.dtype == np.float16 and logits.shape == (159, 2, 10)
    with torch.inference_mode():
        expected = direct.classifier(feats).numpy().astype(np.float16)
    np.testing.assert_array_equal(logits, expected)
    assert t.info["dtype"] == "float16" and t.info["calibration"]["samples"] == 2 * 159
    assert c.verify() == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_is_deterministic_and_close_to_cpu(cache: Path) -> None:
    calibrate(str(cache), "a", "crt", **KW)
    _, on_cpu = _stored(cache, "a+crt")
    calibrate(str(cache), "a", "crt", **KW, device="cuda", overwrite=True)
    _, first = _stored(cache, "a+crt")
    calibrate(str(cache), "a", "crt", **KW, device="cuda", overwrite=True)
    _, again = _stored(cache, "a+crt")
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, on_cpu, rtol=1e-3, atol=1e-3)
    result = calibrate(str(cache), "a", "lws", **KW, device="cuda", dataset=DATASET)
    assert result.device.startswith("cuda") and result.evaluation["split"] == "test"
