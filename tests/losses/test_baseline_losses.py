"""Baseline losses against direct computations of METHODS §3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softlabels.errors import UsageError
from softlabels.losses import bsce, ce, effective_number_weights, get_loss, ldam, list_losses


def _direct_ce(z: np.ndarray, y: np.ndarray) -> float:
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 5, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 5, (8,), generator=g)
    counts = torch.tensor([100, 40, 10, 5, 1])
    return z, y, counts


def test_ce(batch) -> None:
    z, y, _ = batch
    assert ce(student_logits=z, labels=y).item() == pytest.approx(_direct_ce(z.numpy(), y.numpy()))


def test_bsce_adds_log_prior(batch) -> None:
    z, y, counts = batch
    prior = counts.numpy() / counts.numpy().sum()
    expected = _direct_ce(z.numpy() + np.log(prior), y.numpy())
    assert bsce(student_logits=z, labels=y, class_counts=counts).item() == pytest.approx(expected)
    half = _direct_ce(z.numpy() + 0.5 * np.log(prior), y.numpy())
    assert bsce(
        student_logits=z, labels=y, class_counts=counts, tau_bc=0.5
    ).item() == pytest.approx(half)


def test_ldam_margins(batch) -> None:
    z, y, counts = batch
    m = 1 / counts.numpy() ** 0.25
    m = m * 0.5 / m.max()
    adj = z.numpy().copy()
    adj[np.arange(len(y)), y.numpy()] -= m[y.numpy()]
    expected = _direct_ce(30 * adj, y.numpy())
    assert ldam(student_logits=z, labels=y, class_counts=counts).item() == pytest.approx(expected)


def test_effective_number_weights() -> None:
    counts = np.array([1000, 100, 10, 1])
    beta = 0.999
    w = (1 - beta) / (1 - beta**counts)
    w = w / w.sum() * 4
    np.testing.assert_allclose(
        effective_number_weights(torch.tensor(counts), beta).numpy(), w, rtol=1e-6
    )
    assert effective_number_weights(torch.tensor(counts)).sum().item() == pytest.approx(4)
    with pytest.raises(UsageError):
        effective_number_weights(torch.tensor(counts), beta=1.0)


def test_bad_counts(batch) -> None:
    z, y, _ = batch
    with pytest.raises(UsageError, match="at least one"):
        bsce(student_logits=z, labels=y, class_counts=torch.tensor([1, 0, 1, 1, 1]))
    with pytest.raises(UsageError, match="shape"):
        bsce(student_logits=z, labels=y, class_counts=torch.tensor([1, 1]))


def test_registry() -> None:
    assert {"ce", "bsce", "ldam"} <= set(list_losses())
    assert get_loss("bsce").fn is bsce
    with pytest.raises(UsageError, match="Expected a method among"):
        get_loss("focal")
