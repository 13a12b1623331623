"""Samplers, end to end: the labels ``train``, ``distill`` and ``calibrate`` really train on
(the target of every ``F.cross_entropy`` call, recorded with a ``TorchFunctionMode``) have the
class histogram of the sampler asked for on the command line: instance ~ the class counts,
class-balanced ~ uniform over the classes, sqrt ~ the square roots of the counts.

Each run draws about 2000 labels with fixed seeds; a chi-square statistic with a strict
level must accept the requested sampler's histogram and reject the two others'.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from softlabels_wiring_helpers import DATA, SAMPLERS, assert_histogram_of, ce_labels

import softlabels

EPOCHS = 16
BATCH = 32  # 4 steps of 32 labels per epoch: 2048 draws per run


def _drawn(labels: list[np.ndarray], batch: int) -> np.ndarray:
    assert labels, "no cross-entropy call was recorded"
    assert all(len(y) <= batch for y in labels), [len(y) for y in labels]
    return np.concatenate(labels)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_train_trains_on_its_sampler(sampler: str, cli, dataset, tmp_path: Path) -> None:
    with ce_labels() as seen:
        result = cli(
            "train", "--dataset", DATA, "--model", "mlp", "--sampler", sampler,
            "--epochs", EPOCHS, "--batch-size", BATCH, "--lr", 0.01, "--eval-every", EPOCHS,
            "--device", "cpu", "--out", tmp_path / "t", "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["sampler"] == sampler
    drawn = _drawn(seen, BATCH)
    assert len(drawn) == EPOCHS * (dataset.train.labels.size // BATCH) * BATCH
    assert_histogram_of(sampler, drawn, dataset.class_counts("train"))


@pytest.mark.parametrize(
    ("method", "flag", "sampler"),
    [
        ("ce", "instance", "instance"),
        ("ce", "class-balanced", "class-balanced"),
        ("ce", "sqrt", "sqrt"),
        ("ce", None, "instance"),  # the default of every method but CBD
        ("cbd", None, "class-balanced"),  # CBD's default
    ],
)
def test_distill_trains_on_its_sampler(
    method: str, flag: str | None, sampler: str, cli, dataset, views_cache: str, tmp_path: Path
) -> None:
    extra = [] if flag is None else ["--sampler", flag]
    with ce_labels() as seen:
        result = cli(
            "distill", views_cache, "--dataset", DATA, "--out", tmp_path / "d",
            "--method", method, "--model", "mlp", "--teacher", "t", *extra,
            "--epochs", EPOCHS, "--batch-size", BATCH, "--lr", 0.01, "--eval-every", EPOCHS,
            "--no-plots", "--device", "cpu", "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    drawn = _drawn(seen, BATCH)
    assert len(drawn) == EPOCHS * (dataset.train.labels.size // BATCH) * BATCH
    assert_histogram_of(sampler, drawn, dataset.class_counts("train"))


@pytest.mark.parametrize("method", ["lws", "crt"])
def test_calibrate_trains_class_balanced(method: str, cli, views_cache_copy: str) -> None:
    cache = softlabels.open_cache(views_cache_copy)
    batch, epochs = 64, 4
    with ce_labels() as seen:
        result = cli(
            "calibrate", views_cache_copy, "--teacher", "t", "--method", method,
            "--epochs", epochs, "--batch-size", batch, "--json",
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["teacher"] == f"t+{method}"
    drawn = _drawn(seen, batch)
    # Every (row, view) of the cache is a sample; an epoch draws as many.
    assert len(drawn) == epochs * cache.num_samples * cache.num_views
    assert_histogram_of("class-balanced", drawn, cache.class_counts)
