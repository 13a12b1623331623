"""The rule of thumb (METHODS §5) on crafted grids; groups; the --taus / --powers syntax."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softlabels.analysis import DEFAULT_TAUS, choose, flatness, parse_powers, parse_taus
from softlabels.analysis.virtual import _group_setup
from softlabels.errors import UsageError

NAN = math.nan


def test_smallest_effective_temperature_reaching_the_target() -> None:
    c = choose([1, 2, 4, 6, 8], [0.2, 0.6, 1.0, 1.3, 1.1], [0.5] * 5)
    # R == 1 counts ("tail slightly above head" starts at equality); T/p 4 -> T 2, p 0.5.
    assert (c.tau_eff, c.tau, c.power, c.reached) == (4, 2, 0.5, True)
    assert "smallest T/p" in c.reason and "T = 2, p = 0.5" in c.reason


def test_order_of_the_grid_does_not_matter() -> None:
    a = choose([8, 1, 6, 2], [1.5, 0.1, 1.2, 0.9], [0.1] * 4)
    assert a.tau_eff == 6 and a.ratio_tail_head == 1.2


@pytest.mark.parametrize(
    ("tau_eff", "tau", "power"),
    [(1, 1, 1), (1.5, 1.5, 1), (1.99, 1.99, 1), (2, 1, 0.5), (3, 1.5, 0.5), (20, 10, 0.5)],
)
def test_reported_as_student_temperature(tau_eff: float, tau: float, power: float) -> None:
    c = choose([tau_eff], [2.0], [0.9])
    assert (c.tau, c.power, c.tau_eff) == (pytest.approx(tau), power, tau_eff)


def test_no_point_reaches_the_target_takes_the_flattest() -> None:
    c = choose([1, 2, 3], [0.1, 0.7, 0.4], [0.2, 0.9, 0.95])
    assert (c.tau_eff, c.reached) == (2, False)
    assert "no grid point reaches" in c.reason and "flattest" in c.reason


def test_ties_broken_by_entropy_then_smaller_temperature() -> None:
    c = choose([3, 2, 5, 4], [0.5, 0.5, 0.5, 0.3], [0.8, 0.7, 0.8, 0.99])
    assert c.tau_eff == 3  # R tie 3/2/5 -> entropy tie 3/5 -> smaller T/p
    c = choose([3, 2, 5], [0.5, 0.5 + 1e-15, 0.5], [0.8, 0.9, 0.8])
    assert c.tau_eff == 2  # a difference at rounding level is a tie; entropy decides
    c = choose([2, 4], [1.0, 1.0], [0.1, 0.9])
    assert c.tau_eff == 2  # when the target is reached, the smallest T/p wins, not entropy


def test_undefined_ratios_never_win() -> None:
    c = choose([1, 2, 3], [NAN, 0.4, NAN], [0.1, 0.2, 0.3])
    assert c.tau_eff == 2 and not c.reached
    c = choose([1, 2], [NAN, math.inf], [0.1, 0.2])  # head with no mass at all: tail wins
    assert c.tau_eff == 2 and c.reached
    with pytest.raises(UsageError, match="no grid point has a defined tail/head ratio"):
        choose([1, 2], [NAN, NAN], [0.1, 0.2])


def test_flatness_figures() -> None:
    groups = np.array(["many", "medium", "few", "few"])
    f = flatness(np.array([6.0, 2.0, 1.0, 3.0]), groups, ("many", "medium", "few"))
    assert f["ratio_tail_head"] == pytest.approx(2 / 6)
    assert f["max_min"] == 6
    p = np.array([6, 2, 1, 3]) / 12
    assert f["entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(4))
    assert f["group_means"] == {"many": 6, "medium": 2, "few": 2}
    flat = flatness(np.ones(4), groups, ("many", "medium", "few"))
    assert flat["entropy"] == pytest.approx(1) and flat["ratio_tail_head"] == 1
    zero = flatness(np.array([4.0, 0.0, 0.0, 0.0]), groups, ("many", "medium", "few"))
    assert zero["max_min"] == math.inf and zero["ratio_tail_head"] == 0


def test_empty_groups() -> None:
    full = np.array([500, 300, 50, 30, 10, 5])
    d, names, order, note = _group_setup(full, "auto")
    assert (d, order, note) == ("absolute", ("many", "medium", "few"), None)
    no_medium = np.array([500, 300, 10, 5])
    d, names, order, note = _group_setup(no_medium, "auto")
    assert (d, order, note) == ("thirds", ("head", "middle", "tail"), None)
    # Forced absolute: kept when only medium is empty (head and tail exist) ...
    d, names, _o, note = _group_setup(no_medium, "absolute")
    assert d == "absolute" and names.tolist() == ["many", "many", "few", "few"] and note is None
    # ... but head/tail fall back to thirds when many or few is empty, and the result says so.
    d, names, order, note = _group_setup(np.array([90, 50, 30, 25]), "absolute")
    assert d == "thirds" and "many and few empty" in str(note)
    assert names.tolist() == ["head", "head", "middle", "tail"]
    with pytest.raises(UsageError, match="at least 3 classes"):
        _group_setup(np.array([10, 1]), "auto")


def test_parse_taus() -> None:
    assert parse_taus("1:10:0.5") == DEFAULT_TAUS and len(DEFAULT_TAUS) == 19
    assert parse_taus("1:10:0.5")[-1] == 10
    assert parse_taus("0.1:0.3:0.1") == (0.1, 0.2, 0.3)  # float steps still include STOP
    assert parse_taus("2:3:5") == (2,)
    assert parse_taus("4, 2,2,9") == (2, 4, 9)
    assert parse_powers("1,0.5") == (1, 0.5) and parse_powers("0.25") == (0.25,)


@pytest.mark.parametrize(
    "text", ["0:2:1", "-1", "1,0", "1:2", "1:2:0", "3:1:1", "a:b:c", "x", "", "inf", "1:nan:1"]
)
def test_parse_taus_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--taus"):
        parse_taus(text)


@pytest.mark.parametrize("text", ["0", "1.5", "-0.5", "a", "", "nan"])
def test_parse_powers_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--powers"):
        parse_powers(text)
