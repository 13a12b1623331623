"""Metrics against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softlabels.metrics import (
    evaluate_logits,
    expected_calibration_error,
    group_accuracies,
    per_class_accuracy,
    shot_groups,
    thirds_groups,
)


def test_shot_group_boundaries() -> None:
    assert shot_groups(np.array([101, 100, 20, 19, 0])).tolist() == [
        "many",
        "medium",
        "medium",
        "few",
        "few",
    ]


def test_thirds_sorted_by_count_with_id_ties() -> None:
    counts = np.array([5, 50, 50, 1, 9, 20, 7])
    # sorted desc: 1(50), 2(50), 5(20) | 4(9), 6(7) | 0(5), 3(1)
    assert thirds_groups(counts).tolist() == [
        "tail",
        "head",
        "head",
        "tail",
        "middle",
        "head",
        "middle",
    ]


def test_per_class_accuracy_by_hand() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 0])
    acc = per_class_accuracy(pred, labels, 4)
    np.testing.assert_allclose(acc[:3], [0.5, 2 / 3, 0.0])
    assert np.isnan(acc[3])


def test_groups_absolute_and_empty_group_switches_to_thirds() -> None:
    per_class = np.array([1.0, 0.5, 0.25])
    full = group_accuracies(per_class, np.array([200, 50, 5]))
    assert full == {"definition": "absolute", "many": 1.0, "medium": 0.5, "few": 0.25}
    empty = group_accuracies(per_class, np.array([90, 50, 5]))
    assert empty["definition"] == "thirds"
    assert empty["many"] is None and empty["medium"] == 0.75 and empty["few"] == 0.25
    assert (empty["head"], empty["middle"], empty["tail"]) == (1.0, 0.5, 0.25)


def test_ece_by_hand() -> None:
    conf = np.array([0.95, 0.95, 0.55, 0.05])
    correct = np.array([1, 0, 1, 0])
    # bins: 0.95 -> bin 14 (2 samples, acc .5, conf .95), .55 -> bin 8 (acc 1, conf .55), .05 -> bin 0
    expected = 0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.05
    assert expected_calibration_error(conf, correct) == pytest.approx(expected)
    # a bin edge belongs to the lower bin: confidence exactly 1/15 is in bin 0
    assert expected_calibration_error(np.array([1 / 15]), np.array([1])) == pytest.approx(
        1 - 1 / 15
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_evaluate_matches_direct_computation(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 3
    labels = rng.integers(0, c, size=n)
    res = evaluate_logits(logits, labels, np.arange(c) * 30 + 1)
    assert res["top1"] == pytest.approx(np.mean(logits.argmax(1) == labels))
    assert 0.0 <= res["ece"] <= 1.0
    for k in range(c):
        m = labels == k
        got = res["per_class"][k]
        assert (
            (got is None)
            if not m.any()
            else got == pytest.approx(np.mean(logits[m].argmax(1) == k))
        )
