"""Samplers (class frequencies, determinism) and learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softlabels.engine.optim import OptimConfig, lr_factor
from softlabels.engine.samplers import class_probabilities, make_sampler
from softlabels.errors import UsageError

COUNTS = np.array([400, 100, 25, 4])
LABELS = np.repeat(np.arange(4), COUNTS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("instance", COUNTS / COUNTS.sum()),
        ("class-balanced", np.full(4, 0.25)),
        ("sqrt", np.sqrt(COUNTS) / np.sqrt(COUNTS).sum()),
    ],
)
def test_class_frequencies(name: str, expected: np.ndarray) -> None:
    np.testing.assert_allclose(class_probabilities(name, COUNTS), expected)
    s = make_sampler(name, LABELS, 4, seed=3)
    drawn = np.concatenate([s.epoch(e) for e in range(40)])
    freq = np.bincount(LABELS[drawn], minlength=4) / len(drawn)
    # 40 epochs x 529 draws: binomial sd <= 0.0035; allow 4 sd
    np.testing.assert_allclose(freq, expected, atol=0.015)
    assert drawn.min() >= 0 and drawn.max() < len(LABELS)


def test_instance_sampler_is_a_permutation() -> None:
    idx = make_sampler("instance", LABELS, 4, seed=0).epoch(5)
    assert sorted(idx.tolist()) == list(range(len(LABELS)))


def test_balanced_sampler_uses_every_instance_of_a_class_uniformly() -> None:
    s = make_sampler("class-balanced", LABELS, 4, seed=1)
    drawn = np.concatenate([s.epoch(e) for e in range(60)])
    tail = drawn[LABELS[drawn] == 3]
    per_instance = np.bincount(tail - COUNTS[:3].sum(), minlength=4)
    assert per_instance.min() > 0.8 * per_instance.mean()


def test_samplers_deterministic_per_seed_and_epoch() -> None:
    for name in ("instance", "class-balanced", "sqrt"):
        a = make_sampler(name, LABELS, 4, seed=7)
        b = make_sampler(name, LABELS, 4, seed=7)
        np.testing.assert_array_equal(a.epoch(3), b.epoch(3))
        assert not np.array_equal(a.epoch(3), a.epoch(4))
        assert not np.array_equal(a.epoch(3), make_sampler(name, LABELS, 4, seed=8).epoch(3))


def test_unknown_sampler() -> None:
    with pytest.raises(UsageError, match="sampler"):
        make_sampler("balanced", LABELS, 4, seed=0)


def test_cosine_schedule_with_warmup() -> None:
    cfg = OptimConfig(schedule="cosine", warmup_epochs=1)
    steps, total = 10, 100
    assert lr_factor(0, total, steps, cfg) == pytest.approx(0.1)
    assert lr_factor(9, total, steps, cfg) == pytest.approx(1.0)
    assert lr_factor(10, total, steps, cfg) == pytest.approx(1.0)
    mid = 10 + 45
    assert lr_factor(mid, total, steps, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(total, total, steps, cfg) == pytest.approx(0.0)


def test_step_schedule() -> None:
    cfg = OptimConfig(schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert lr_factor(49, 100, 10, cfg) == 1.0
    assert lr_factor(50, 100, 10, cfg) == pytest.approx(0.1)
    assert lr_factor(80, 100, 10, cfg) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": 0},
        {"optimizer": "adam"},
        {"schedule": "poly"},
        {"momentum": 1.0},
        {"weight_decay": -1},
    ],
)
def test_bad_optim_config(bad: dict) -> None:
    with pytest.raises(UsageError):
        OptimConfig(**bad)
