"""Virtual examples against a direct NumPy computation; the streaming pass and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from softlabels_analysis_helpers import direct_v, make_cache, softmax

from softlabels.analysis import DEFAULT_TAUS, virtual_examples
from softlabels.errors import (
    ChecksumMismatchError,
    IncompleteCacheError,
    NonFiniteError,
    UsageError,
)
from softlabels.metrics import shot_groups, thirds_groups
from softlabels.stores.cache import ArrayReader, Cache, chunk_key


@settings(max_examples=60, deadline=None)
@given(
    z=st.lists(st.floats(-30, 30), min_size=2, max_size=9),
    tau=st.floats(0.2, 20),
    power=st.floats(0.05, 1.0),
)
def test_power_normalisation_is_a_temperature(z: list[float], tau: float, power: float) -> None:
    """normalize(softmax(z / T) ** p) == softmax(z p / T) (METHODS §5)."""
    q = softmax(np.array(z) / tau) ** power
    np.testing.assert_allclose(
        q / q.sum(), softmax(np.array(z) * power / tau), rtol=1e-9, atol=1e-12
    )


def test_grid_matches_direct_numpy(small: dict[str, Any]) -> None:
    taus, powers = (0.5, 1.0, 2.5, 4.0), (1.0, 0.5, 0.3)
    ve = virtual_examples(small["url"], taus=taus, powers=powers, device="cpu")
    assert len(ve.grid) == len(taus) * len(powers)
    z = small["logits"].astype(np.float32)  # what the cache holds, exactly
    for g in ve.grid:
        assert g.tau_eff == pytest.approx(g.tau / g.power)
        want = direct_v([z], g.tau, g.power)
        np.testing.assert_allclose(g.per_class, want, rtol=2e-5, atol=1e-6)
        assert g.per_class.sum() == pytest.approx(37, rel=1e-6)  # one example per sample
        p = want / want.sum()
        assert g.entropy == pytest.approx(-(p * np.log(p)).sum() / np.log(7), rel=1e-5)
        assert g.max_min == pytest.approx(want.max() / want.min(), rel=1e-4)
    # 7 classes of < 20 samples: no "many" group, so the relative thirds are used.
    counts = np.bincount(small["labels"], minlength=7)
    assert ve.groups == "thirds" and ve.group_names == ("head", "middle", "tail")
    np.testing.assert_array_equal(ve.class_groups, thirds_groups(counts))
    np.testing.assert_array_equal(ve.input_counts, counts)
    g = ve.grid[0]
    tail = g.per_class[ve.class_groups == "tail"].mean()
    head = g.per_class[ve.class_groups == "head"].mean()
    assert g.ratio_tail_head == pytest.approx(tail / head)
    assert g.group_means["tail"] == pytest.approx(tail)


def test_each_effective_temperature_computed_once(
    small: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from softlabels.analysis import virtual

    calls: list[list[float]] = []
    original = virtual._reduce_rows

    def spy(rows: np.ndarray, lo: int, hi: int, scales: list[float], *a: Any) -> Any:
        calls.append(list(scales))
        return original(rows, lo, hi, scales, *a)

    monkeypatch.setattr(virtual, "_reduce_rows", spy)
    ve = virtual_examples(small["url"], taus=(1, 2, 4), powers=(1, 0.5))
    assert calls and all(c == [1.0, 0.5, 0.25, 0.125] for c in calls)  # 6 points, 4 T/p
    by_eff: dict[float, list[np.ndarray]] = {}
    for g in ve.grid:
        by_eff.setdefault(g.tau_eff, []).append(g.per_class)
    assert sorted(by_eff) == [1, 2, 4, 8]
    assert [len(v) for _k, v in sorted(by_eff.items())] == [1, 2, 2, 1]
    for arrays in by_eff.values():
        assert all(a is arrays[0] for a in arrays)  # one array per T/p, shared


def test_absolute_groups_and_ensemble(
    lt_reference: Path, lt_logits: dict[str, np.ndarray], lt_labels: np.ndarray
) -> None:
    ve = virtual_examples(str(lt_reference), ["a", "b"], taus=(1.0, 3.0), powers=(1.0,))
    assert ve.teacher == "a+b" and ve.groups == "absolute"
    assert ve.group_names == ("many", "medium", "few")
    np.testing.assert_array_equal(ve.class_groups, shot_groups(np.bincount(lt_labels)))
    for g in ve.grid:
        want = direct_v([lt_logits["a"], lt_logits["b"]], g.tau, g.power)
        np.testing.assert_allclose(g.per_class, want, rtol=2e-5)
        few, many = want[ve.class_groups == "few"].mean(), want[ve.class_groups == "many"].mean()
        assert g.ratio_tail_head == pytest.approx(few / many, rel=1e-5)
    d = ve.to_dict()
    assert set(d) >= {"teacher", "groups", "grid", "choice", "plots"}
    assert set(d["grid"][0]) >= {
        "tau", "power", "tau_eff", "ratio_tail_head", "entropy", "max_min", "per_class",
    }  # fmt: skip
    assert set(d["choice"]) >= {"tau", "power", "tau_eff", "reason"}
    # The choice is reported as T = (T/p)/2, p = 0.5 (or p = 1 below T/p 2); without
    # p = 0.5 in the grid, the points of the chosen T/p are the marked ones.
    marked = [g for g in ve.grid if g.chosen]
    assert marked and all(g.tau_eff == ve.choice.tau_eff for g in marked)


def test_default_grid_one_pass_each_chunk_read_once(
    lt_reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[str, int]] = []
    original = ArrayReader.read_chunk

    def counting(self: ArrayReader, chunk: int, *, verify: bool = True) -> np.ndarray:
        assert verify, "chunks must be checksum-verified"
        reads.append((self.path, chunk))
        return original(self, chunk, verify=verify)

    def no_whole_reads(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the whole array must never be read")

    monkeypatch.setattr(ArrayReader, "read_chunk", counting)
    monkeypatch.setattr(ArrayReader, "read_all", no_whole_reads)
    seen: list[tuple[int, int]] = []
    ve = virtual_examples(str(lt_reference), ["a", "b"], progress=lambda d, t: seen.append((d, t)))
    n_chunks = Cache(str(lt_reference)).num_chunks
    logits = [r for r in reads if r[0].endswith("/logits")]
    assert sorted(logits) == sorted(
        (f"teachers/{t}/logits", c) for t in "ab" for c in range(n_chunks)
    )
    assert len(ve.grid) == 2 * len(DEFAULT_TAUS) == 38
    assert seen[0] == (0, 404) and seen[-1] == (404, 404)
    assert [d for d, _t in seen] == sorted(d for d, _t in seen)


def test_single_teacher_default_and_ambiguity(lt_reference: Path, small: dict[str, Any]) -> None:
    assert virtual_examples(small["url"], taus=(2,), powers=(1,)).teacher == "t"
    with pytest.raises(UsageError, match=r"2 teachers \(a, b\).*--teacher"):
        virtual_examples(str(lt_reference), taus=(2,))
    with pytest.raises(UsageError, match=r"teacher of this cache \(a, b\), got 'nope'"):
        virtual_examples(str(lt_reference), "nope")
    with pytest.raises(UsageError, match="distinct"):
        virtual_examples(str(lt_reference), ["a", "a"])


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"taus": (0,)}, "taus"),
        ({"taus": (-1.0, 2.0)}, "taus"),
        ({"taus": (float("nan"),)}, "taus"),
        ({"taus": ()}, "taus"),
        ({"powers": (0,)}, "powers"),
        ({"powers": (1.5,)}, "powers"),
        ({"groups": "quartiles"}, "groups"),
    ],
)
def test_bad_values_are_usage_errors(small: dict[str, Any], kw: dict[str, Any], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        virtual_examples(small["url"], **kw)


def test_incomplete_and_corrupt_caches_refused(tmp_path: Path, small: dict[str, Any]) -> None:
    part = make_cache(
        tmp_path / "part.slc", {"t": small["logits"]}, small["labels"], chunks=[0, 1, 3, 4]
    )
    with pytest.raises(IncompleteCacheError, match="chunk 2"):
        virtual_examples(part)
    cache = Cache(small["url"])
    key = chunk_key("teachers/t/logits", 3, 3)
    data = bytearray(cache.loc.read(key))
    data[len(data) // 2] ^= 0xFF
    cache.loc.fs.pipe_file(cache.loc.path(key), bytes(data))
    with pytest.raises(ChecksumMismatchError, match="chunk 3 of teachers/t/logits"):
        virtual_examples(small["url"])


def test_non_finite_logits_name_the_samples(tmp_path: Path, small: dict[str, Any]) -> None:
    z = small["logits"].astype(np.float32)
    z[10, 1, 3] = np.nan
    z[20, 0, 0] = np.inf
    z[30, 1, :] = -np.inf  # a view with no finite logit
    z[5, 0, 2] = -np.inf  # one -inf logit is fine: probability 0
    url = make_cache(tmp_path / "nan.slc", {"t": z}, small["labels"])
    with pytest.raises(NonFiniteError, match="s0010") as info:
        virtual_examples(url)
    assert "s0005" not in str(info.value)  # the first bad chunk is named, then it stops
    z[10:] = 0
    url = make_cache(tmp_path / "ok.slc", {"t": z}, small["labels"])
    ve = virtual_examples(url, taus=(1,), powers=(1,))
    assert np.isfinite(ve.grid[0].per_class).all()


def test_fsspec_memory_cache_and_stored_choice(small: dict[str, Any]) -> None:
    import uuid

    from softlabels.analysis import store_choice

    url = make_cache(
        f"memory://softlabels-analysis-{uuid.uuid4().hex}", {"t": small["logits"]}, small["labels"]
    )
    ve = virtual_examples(url, taus=(1, 2), powers=(1, 0.5))
    local = virtual_examples(small["url"], taus=(1, 2), powers=(1, 0.5))
    for a, b in zip(ve.grid, local.grid, strict=True):
        np.testing.assert_array_equal(a.per_class, b.per_class)
    stored = store_choice(url, ve)
    assert Cache(url).meta["tune_tau"] == stored and stored["choice"]["tau"] == ve.choice.tau
