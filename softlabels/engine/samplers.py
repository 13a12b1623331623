"""Samplers: instance, class-balanced and square-root; deterministic given (seed, epoch).

Each epoch draws N indices (N = training set size). The generator of epoch e is
``np.random.Generator(PCG64([seed, e]))``, so resuming at epoch e redraws exactly what an
uninterrupted run would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softlabels.errors import UsageError

__all__ = ["SAMPLERS", "Sampler", "class_probabilities", "make_sampler"]

SAMPLERS = ("instance", "class-balanced", "sqrt")


def class_probabilities(name: str, counts: np.ndarray) -> np.ndarray:
    """Probability that one draw comes from each class."""
    counts = np.asarray(counts, dtype=np.float64)
    if name == "instance":
        w = counts
    elif name == "class-balanced":
        w = (counts > 0).astype(np.float64)
    elif name == "sqrt":
        w = np.sqrt(counts)
    else:
        raise UsageError(f"Expected a sampler among {', '.join(SAMPLERS)}, got {name!r}")
    return w / w.sum()


@dataclass
class Sampler:
    name: str
    labels: np.ndarray
    num_classes: int
    seed: int

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise UsageError(f"Expected a sampler among {', '.join(SAMPLERS)}, got {self.name!r}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        counts = np.bincount(self.labels, minlength=self.num_classes)
        self._probs = class_probabilities(self.name, counts)
        order = np.argsort(self.labels, kind="stable")
        self._by_class = np.split(order, np.cumsum(counts)[:-1])
        self._counts = counts

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int) -> np.ndarray:
        """The N row indices of epoch ``epoch``, in the order they are visited."""
        rng = np.random.Generator(np.random.PCG64([self.seed, epoch]))
        n = len(self.labels)
        if self.name == "instance":
            return rng.permutation(n)
        classes = rng.choice(self.num_classes, size=n, p=self._probs)
        u = rng.random(n)
        pos = np.minimum((u * self._counts[classes]).astype(np.int64), self._counts[classes] - 1)
        starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
        flat = np.concatenate(self._by_class) if n else np.zeros(0, np.int64)
        return flat[starts[classes] + pos]


def make_sampler(name: str, labels: np.ndarray, num_classes: int, seed: int) -> Sampler:
    return Sampler(name, labels, num_classes, seed)
