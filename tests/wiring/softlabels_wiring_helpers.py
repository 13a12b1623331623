"""Helpers of the wiring tests (imported by name: this folder has no ``__init__.py``).

The wiring tests observe real runs from the outside, through two public torch hooks and
no patch of softlabels code:

* :func:`training_inputs` records the input of every training-mode call of an ``nn.Linear``
  with ``in_features == SIGNAL`` (the first layer of an ``mlp`` on MNIST-1D, i.e. the exact
  model input of each step), with a global forward pre-hook.
* :func:`ce_labels` records the target of every ``F.cross_entropy`` call, with a
  ``TorchFunctionMode`` (the labels a training loop really trains on).

Replayed inputs are identified by matching them against every (row, view) of the cache,
regenerated from the cached view seeds with the dataset's public ``augment``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from scipy.stats import chi2
from torch.overrides import TorchFunctionMode

import softlabels
from softlabels.data import load_dataset

# 159 training samples (40, 30, 23, 18, 14, 11, 8, 6, 5, 4 per class), 60 test samples.
DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"
SIGNAL = 40  # MNIST-1D signals are [1, 40]
CLASSES = 10
SEED = 7  # init seed of the teacher and of every student that *is* the teacher
TINY_LR = 1e-12  # students that stay the teacher while the real loop runs
SAMPLERS = ("instance", "class-balanced", "sqrt")
# Chi-square level of the sampler tests: deterministic seeds, so a level this strict only
# says how far from the expected histogram a count may be; it never makes a test flaky.
CHI2_LEVEL = 1e-9


# --------------------------------------------------------------------------- observation


@contextmanager
def training_inputs(in_features: int = SIGNAL) -> Iterator[list[torch.Tensor]]:
    """Inputs ``[B, in_features]`` of every training-mode ``nn.Linear(in_features, ...)`` call."""
    seen: list[torch.Tensor] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        first = isinstance(module, torch.nn.Linear) and module.in_features == in_features
        if first and module.training and args and isinstance(args[0], torch.Tensor):
            seen.append(args[0].detach().float().cpu().clone())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


class _CrossEntropyTargets(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.labels: list[np.ndarray] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.cross_entropy:
            target = args[1] if len(args) > 1 else kwargs["target"]
            self.labels.append(target.detach().cpu().numpy().copy())
        return func(*args, **kwargs)


@contextmanager
def ce_labels() -> Iterator[list[np.ndarray]]:
    """The target labels of every ``F.cross_entropy`` call made inside the block."""
    mode = _CrossEntropyTargets()
    with mode:
        yield mode.labels


# --------------------------------------------------------------------------- replayed views


def replay_table(cache_url: str) -> tuple[torch.Tensor, int]:
    """Every (row, view) input of a K-view cache as ``[N * V, SIGNAL]`` (index ``row * V +
    view``), regenerated from the cached seeds, and V."""
    cache = softlabels.open_cache(cache_url)
    ds = load_dataset(cache.dataset["spec"])
    seeds = np.asarray(cache.view_seeds[...])
    n, v = seeds.shape
    strength = (cache.meta.get("views") or {}).get("strength") or "standard"
    raw = ds.train.load(np.repeat(np.arange(n), v))
    x = ds.augment(raw, seeds.reshape(-1), strength=strength)
    return x.reshape(n * v, -1).float(), v


def match_rows(inputs: torch.Tensor, table: torch.Tensor) -> tuple[np.ndarray, float]:
    """Index into ``table`` of each input (nearest neighbour) and the largest distance."""
    d = torch.cdist(inputs.double(), table.double())
    dist, idx = d.min(dim=1)
    return idx.numpy(), float(dist.max())


def identify(
    batches: list[torch.Tensor], table: torch.Tensor, views: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, views) of each recorded batch; asserts every input is an exact cached view."""
    out = []
    for x in batches:
        idx, worst = match_rows(x, table)
        assert worst < 1e-5, f"a student input is no cached view (distance {worst:.3g})"
        out.append((idx // views, idx % views))
    return out


# --------------------------------------------------------------------------- samplers


def expected_probabilities(sampler: str, counts: np.ndarray) -> np.ndarray:
    """Class probabilities of one draw, computed here (not with softlabels' helper)."""
    counts = np.asarray(counts, dtype=np.float64)
    w = {
        "instance": counts,
        "class-balanced": (counts > 0).astype(np.float64),
        "sqrt": np.sqrt(counts),
    }[sampler]
    return w / w.sum()


def chi_square(observed: np.ndarray, probs: np.ndarray) -> float:
    expected = observed.sum() * probs
    return float(((observed - expected) ** 2 / expected).sum())


def assert_histogram_of(sampler: str, labels: np.ndarray, counts: np.ndarray) -> None:
    """``labels`` have the class histogram of ``sampler``, and not that of any other one."""
    observed = np.bincount(labels, minlength=len(counts)).astype(np.float64)
    limit = float(chi2.ppf(1 - CHI2_LEVEL, len(counts) - 1))
    stats = {s: chi_square(observed, expected_probabilities(s, counts)) for s in SAMPLERS}
    assert stats[sampler] < limit, (
        f"{int(observed.sum())} draws do not follow the {sampler} histogram: chi2 "
        f"{stats[sampler]:.1f} >= {limit:.1f}; observed {observed.astype(int).tolist()}, "
        f"chi2 against each sampler {stats}"
    )
    for other in SAMPLERS:
        if other != sampler:  # enough draws to tell the samplers apart
            assert stats[other] > limit, (other, stats, observed.astype(int).tolist())


# --------------------------------------------------------------------------- run outputs


def losses(metrics_path: Any, student: str) -> list[float]:
    """The per-epoch mean loss of one student, in epoch order."""
    rows = pq.read_table(metrics_path).to_pylist()
    mine = sorted((r for r in rows if r["student"] == student), key=lambda r: r["epoch"])
    return [float(r["loss"]) for r in mine]


def state_dict(path: Any) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
