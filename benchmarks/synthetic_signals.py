"""A long-tailed synthetic 1-D dataset with many classes, as a ``py:`` dataset spec.

    py:synthetic_signals:signals:classes=100,imb=100

(with this folder on ``sys.path``; ``benchmarks/bench_topk.py`` puts it there). Each class
has a random smooth template of length 40 (a sum of a few random sinusoids); a sample is its
class's template, circularly shifted by up to 3 steps, scaled by U(0.8, 1.2), plus Gaussian
noise. Training counts follow METHODS §1 (``n_i = int(n_max * (1/imb) ** (i / (C - 1)))``,
class 0 the head); the test split has ``n_test`` samples per class. Seeded: the same
arguments give the same arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = ["signals"]

LENGTH = 40


def _templates(classes: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, LENGTH, endpoint=False)
    out = np.zeros((classes, LENGTH))
    for _ in range(3):
        freq = rng.integers(1, 6, size=(classes, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(classes, 1))
        out += rng.uniform(0.3, 1.0, size=(classes, 1)) * np.sin(freq * t + phase)
    return out / out.std(axis=1, keepdims=True)


def _samples(
    templates: np.ndarray, labels: np.ndarray, noise: float, rng: np.random.Generator
) -> np.ndarray:
    shifts = rng.integers(-3, 4, size=len(labels))
    x = np.stack([np.roll(templates[y], s) for y, s in zip(labels, shifts, strict=True)])
    x = x * rng.uniform(0.8, 1.2, size=(len(labels), 1)) + noise * rng.normal(size=x.shape)
    return x[:, None, :].astype(np.float32)


def signals(
    classes: int = 100,
    n_max: int = 500,
    imb: float = 100.0,
    n_test: int = 20,
    noise: float = 0.6,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"train", "test", "classes"}`` of the synthetic dataset (see the module docstring)."""
    rng = np.random.default_rng(seed)
    templates = _templates(classes, rng)
    counts = [int(n_max * (1 / imb) ** (i / (classes - 1))) for i in range(classes)]
    train_y = np.repeat(np.arange(classes), counts)
    test_y = np.repeat(np.arange(classes), n_test)
    train_x = _samples(templates, train_y, noise, rng)
    test_x = _samples(templates, test_y, noise, rng)
    return {
        "train": TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y)),
        "test": TensorDataset(torch.from_numpy(test_x), torch.from_numpy(test_y)),
        "classes": [f"c{i}" for i in range(classes)],
    }
