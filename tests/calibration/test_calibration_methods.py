"""The pure functions of SSD stage II on tensors: LWS, cRT, tau-norm and the classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softlabels.calibration import (
    LWS_REFERENCE,
    Classifier,
    fit_crt,
    fit_lws,
    flatten_views,
    tau_norm,
)
from softlabels.errors import UsageError
from softlabels.models import CosineClassifier


def _long_tailed(seed: int = 0, views: int = 1) -> tuple[torch.Tensor, torch.Tensor, Classifier]:
    """Gaussian classes (200 ... 5 samples) and a classifier biased towards the head."""
    gen = torch.Generator().manual_seed(seed)
    c, d = 6, 8
    counts = [200, 100, 50, 20, 10, 5]
    means = torch.randn(c, d, generator=gen) * 2
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    feats = means[labels][:, None, :] + torch.randn(len(labels), views, d, generator=gen)
    # The classifier of a long-tailed training run: right directions, head-biased norms.
    norms = torch.tensor([3.0, 2.5, 2.0, 1.2, 0.8, 0.5])
    weight = means * norms[:, None]
    bias = torch.log(torch.tensor(counts, dtype=torch.float32))
    return feats.squeeze(1) if views == 1 else feats, labels, Classifier(weight, bias)


def _balanced_acc(cls: Classifier, feats: torch.Tensor, labels: torch.Tensor) -> float:
    pred = cls(feats).argmax(-1)
    return float(np.mean([(pred[labels == k] == k).float().mean() for k in labels.unique()]))


def test_classifier_matches_linear_and_cosine_layers() -> None:
    torch.manual_seed(0)
    v = torch.randn(5, 7)
    lin = torch.nn.Linear(7, 3)
    cls = Classifier(lin.weight.detach(), lin.bias.detach())
    torch.testing.assert_close(cls(v), lin(v).detach(), rtol=0, atol=0)
    cos = CosineClassifier(7, 3, scale=12.0)
    ccls = Classifier(cos.weight.detach(), torch.zeros(3), kind="cosine", cosine_scale=12.0)
    torch.testing.assert_close(ccls(v), cos(v).detach(), rtol=0, atol=0)
    s = torch.tensor([1.0, 2.0, 0.5])
    scaled = Classifier(lin.weight.detach(), lin.bias.detach(), lws_scale=s)
    torch.testing.assert_close(scaled(v), lin(v).detach() * s)
    assert scaled.formula() == "lws_scale * (W v + b)"
    assert ccls.formula() == "cosine_scale * normalize(W) normalize(v)"


def test_tau_norm_rows_and_bias() -> None:
    w = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([0.1, 0.2, 0.3])
    cls = Classifier(w, b)
    one = tau_norm(cls, 1.0)
    torch.testing.assert_close(one.weight.norm(dim=1), torch.tensor([1.0, 0.0, 1.0]))
    # Dropped by default, as the reference code scores W' v (this asserted "kept" before,
    # when keeping it was the default); kept on request.
    torch.testing.assert_close(one.bias, torch.zeros(3))
    v = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    torch.testing.assert_close(one(v), v @ one.weight.T)
    assert one.formula() == "W v"
    kept = tau_norm(cls, 1.0, keep_bias=True)
    torch.testing.assert_close(kept.bias, b)
    torch.testing.assert_close(kept.weight, one.weight)
    torch.testing.assert_close(kept(v), v @ one.weight.T + b)
    assert kept.formula() == "W v + b"
    half = tau_norm(cls, 0.5)
    torch.testing.assert_close(half.weight[0], w[0] / 5**0.5)
    torch.testing.assert_close(tau_norm(cls, 0.0).weight, w)
    with pytest.raises(UsageError, match="cosine"):
        tau_norm(Classifier(w, torch.zeros(3), kind="cosine", cosine_scale=10.0))
    with pytest.raises(UsageError, match="tau-norm-power"):
        tau_norm(cls, -1.0)


def test_lws_rebalances_a_head_biased_classifier() -> None:
    feats, labels, cls = _long_tailed()
    fit = fit_lws(feats, labels, cls, epochs=10, lr=0.1, batch_size=64, seed=0)
    assert fit.classifier.lws_scale is not None and len(fit.losses) == 10
    torch.testing.assert_close(fit.classifier.weight, cls.weight)  # frozen
    assert fit.steps == 10 * -(-len(labels) // 64)
    s = fit.classifier.lws_scale
    assert s[-1] > s[0]  # the tail class is scaled up relative to the head
    assert _balanced_acc(fit.classifier, feats, labels) > _balanced_acc(cls, feats, labels) + 0.05


def test_lws_defaults_are_the_reference_sgd() -> None:
    """lr 0.2, momentum 0.9, weight decay 5e-4 on the scales (classifier-balancing's LWS)."""
    assert LWS_REFERENCE == {"lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4, "decay_scale": True}
    feats, labels, cls = _long_tailed()
    kw = {"epochs": 2, "batch_size": 64, "seed": 1}
    default = fit_lws(feats, labels, cls, **kw)
    explicit = fit_lws(feats, labels, cls, lr=0.2, weight_decay=5e-4, decay_scale=True, **kw)
    assert torch.equal(default.classifier.lws_scale, explicit.classifier.lws_scale)
    assert not torch.equal(
        default.classifier.lws_scale, fit_lws(feats, labels, cls, lr=0.1, **kw).classifier.lws_scale
    )
    assert default.settings == {
        "epochs": 2, "lr": 0.2, "batch_size": 64, "seed": 1, "momentum": 0.9,
        "weight_decay": 5e-4, "decay_on": "scale", "schedule": "cosine",
        "sampler": "class-balanced", "differs_from_reference": [],
    }  # fmt: skip
    other = fit_lws(feats, labels, cls, lr=0.1, weight_decay=0.0, decay_scale=False, **kw)
    assert other.settings["decay_on"] == "none"
    assert other.settings["differs_from_reference"] == [
        "lr 0.1 (reference 0.2)",
        "weight_decay 0 (reference 0.0005)",
        "no weight decay on the scales (reference: decayed)",
    ]


def test_lws_weight_decay_reaches_the_scales() -> None:
    """One SGD step from s = 1: decaying the scales moves each by exactly -lr * wd more."""
    feats, labels, cls = _long_tailed()
    kw = {"epochs": 1, "batch_size": len(labels), "seed": 0, "lr": 0.2, "weight_decay": 0.25}
    decayed = fit_lws(feats, labels, cls, decay_scale=True, **kw)
    free = fit_lws(feats, labels, cls, decay_scale=False, **kw)
    assert decayed.steps == free.steps == 1
    torch.testing.assert_close(
        decayed.classifier.lws_scale - free.classifier.lws_scale,
        torch.full((6,), -0.2 * 0.25),
    )
    with pytest.raises(UsageError, match="weight-decay"):
        fit_lws(feats, labels, cls, weight_decay=-1.0)


def test_crt_learns_and_is_seeded() -> None:
    feats, labels, _ = _long_tailed(1)
    a = fit_crt(feats, labels, 6, epochs=8, batch_size=64, seed=5)
    b = fit_crt(feats, labels, 6, epochs=8, batch_size=64, seed=5)
    c = fit_crt(feats, labels, 6, epochs=8, batch_size=64, seed=6)
    assert torch.equal(a.classifier.weight, b.classifier.weight) and a.losses == b.losses
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert a.losses[-1] < a.losses[0]
    assert _balanced_acc(a.classifier, feats, labels) > 0.8
    cos = fit_crt(feats, labels, 6, kind="cosine", cosine_scale=10.0, epochs=4, batch_size=64)
    assert cos.classifier.kind == "cosine" and torch.equal(cos.classifier.bias, torch.zeros(6))
    assert cos.classifier.cosine_scale == 10.0


def test_views_are_samples_carrying_the_row_label() -> None:
    feats, labels, cls = _long_tailed(2, views=3)
    flat, flat_labels = flatten_views(feats, labels)
    assert flat.shape == (len(labels) * 3, 8)
    torch.testing.assert_close(flat[3 * 7 + 2], feats[7, 2])
    assert flat_labels[3 * 7 + 2] == labels[7]
    kw = {"epochs": 2, "batch_size": 100, "seed": 3}
    by_views, by_flat = fit_lws(feats, labels, cls, **kw), fit_lws(flat, flat_labels, cls, **kw)
    assert torch.equal(by_views.classifier.lws_scale, by_flat.classifier.lws_scale)


def test_progress_reports_every_step() -> None:
    feats, labels, cls = _long_tailed()
    seen: list[tuple[int, int]] = []
    fit = fit_lws(
        feats, labels, cls, epochs=2, batch_size=128, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(i + 1, fit.steps) for i in range(fit.steps)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"epochs": 0}, "epochs >= 1"),
        ({"lr": 0.0}, "lr > 0"),
        ({"batch_size": 0}, "batch-size >= 1"),
        ({"seed": -1}, "seed >= 0"),
    ],
)
def test_bad_hyper_parameters(kw: dict, match: str) -> None:
    feats, labels, cls = _long_tailed()
    with pytest.raises(UsageError, match=match):
        fit_lws(feats, labels, cls, **kw)


def test_bad_shapes_and_labels() -> None:
    feats, labels, cls = _long_tailed()
    with pytest.raises(UsageError, match="dimension 8"):
        fit_lws(feats[:, :5], labels, cls)
    with pytest.raises(UsageError, match="labels in"):
        fit_lws(feats, labels + 3, cls)
    with pytest.raises(UsageError, match="labels"):
        fit_crt(feats, labels[:-1], 6)
    with pytest.raises(UsageError, match="linear or cosine"):
        fit_crt(feats, labels, 6, kind="arc")
