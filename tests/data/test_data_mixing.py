"""The mixing rule (softlabels/data/mixing.py) against independent numpy/scipy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from softlabels.data.augment import view_seeds
from softlabels.data.mixing import Mix, apply_mix, draw, mixing_info
from softlabels.errors import UsageError

N = 1000  # rows of the "dataset" the partners are drawn from
SEEDS = view_seeds(11, np.arange(20000), 1)[:, 0]


def test_mixup_lam_is_beta_and_a_view_is_mixed_with_probability_p() -> None:
    info = mixing_info(0.4, 0.0, 0.3)
    assert info is not None
    mix = draw(info, SEEDS, N, (32, 32))
    on = mix.mixed
    assert abs(on.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / len(SEEDS))
    assert (mix.box == -1).all() and (mix.lam[~on] == 1).all()
    assert stats.kstest(mix.lam[on], stats.beta(0.4, 0.4).cdf).pvalue > 1e-4
    counts = np.bincount(mix.partner[on], minlength=N)  # uniform over the N rows
    assert len(counts) == N and stats.chisquare(counts).pvalue > 1e-4


def test_cutmix_box_on_images_and_lam_is_its_real_complement() -> None:
    info = mixing_info(0.0, 1.0, 1.0)
    assert info is not None
    h, w = 24, 32
    mix = draw(info, SEEDS, N, (h, w))
    y0, y1, x0, x1 = mix.box.T.astype(np.int64)
    assert ((y0 >= 0) & (y0 <= y1) & (y1 <= h) & (x0 >= 0) & (x0 <= x1) & (x1 <= w)).all()
    area = (y1 - y0) * (x1 - x0) / (h * w)
    np.testing.assert_array_equal(mix.lam, (1 - area).astype(np.float32))
    # Boxes inside the image: sides 2 * (floor(H r) // 2) for one ratio r, so the aspect is
    # the image's up to rounding; lam ~ Beta(1, 1) before correction: mean area about 1/2.
    inside = (y0 > 0) & (y1 < h) & (x0 > 0) & (x1 < w) & (y1 - y0 > 8)
    ratio = (x1 - x0)[inside] / (y1 - y0)[inside]
    assert np.abs(ratio - w / h).max() < 0.25
    assert 0.2 < area.mean() < 0.5  # clipping only shrinks boxes


def test_apply_mix_pastes_the_box_and_blends_mixup_as_numpy_does() -> None:
    g = np.random.default_rng(0)
    own = g.normal(size=(3, 2, 6, 8)).astype(np.float32)
    other = g.normal(size=(2, 2, 6, 8)).astype(np.float32)  # partners of rows 0 and 2
    mix = Mix(
        partner=np.array([5, -1, 7], np.int32),
        lam=np.array([0.25, 1.0, 0.75], np.float32),
        box=np.array([[-1, -1, -1, -1], [-1, -1, -1, -1], [1, 4, 2, 6]], np.int32),
    )
    got = apply_mix(torch.from_numpy(own), torch.from_numpy(other), mix).numpy()
    want = own.copy()
    want[0] = np.float32(0.25) * own[0] + np.float32(0.75) * other[0]
    want[2, :, 1:4, 2:6] = other[1, :, 1:4, 2:6]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(got[1], own[1])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((-0.1, 0.0, 0.5), "--mixup ALPHA >= 0"),
        ((0.0, -2.0, 0.5), "--cutmix ALPHA >= 0"),
        ((1.0, 0.0, -0.1), "--mix-prob in [0, 1]"),
        ((0.0, 0.0, 0.2), "--mixup or --cutmix ALPHA > 0"),
        ((0.4, 0.0, 0.0), "--mix-prob P > 0"),
    ],
)
def test_bad_recipes_are_refused(args: tuple[float, float, float], words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("[", r"\[").replace("]", r"\]")):
        mixing_info(*args)


def test_no_mixing_by_default() -> None:
    assert mixing_info(0.0, 0.0, 0.0) is None
