from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from softlabels.data import augment, clean, view_seeds
from softlabels.errors import UsageError

A = importlib.import_module("softlabels.data.augment")  # the module (the package exports the fn)

RNG = np.random.default_rng(0)
LARGE_RAW = torch.from_numpy(RNG.integers(0, 256, (9, 3, 37, 37), dtype=np.uint8))
SMALL_RAW = torch.from_numpy(RNG.integers(0, 256, (9, 3, 32, 32), dtype=np.uint8))
GREY_RAW = torch.from_numpy(RNG.integers(0, 256, (9, 1, 8, 8), dtype=np.uint8))
SIGNAL_RAW = torch.from_numpy(RNG.normal(size=(9, 1, 40)).astype(np.float32))

CASES: list[tuple[str, dict[str, Any], torch.Tensor]] = [
    ("large", A.large_image_recipe(32), LARGE_RAW),
    ("cifar", A.small_image_recipe(A.CIFAR10_MEAN, A.CIFAR10_STD, pad=4, flip=True), SMALL_RAW),
    ("digits", A.small_image_recipe((0.3,), (0.4,), pad=1, flip=False), GREY_RAW),
    ("signal", A.signal1d_recipe(), SIGNAL_RAW),
]
IDS = [c[0] for c in CASES]


def test_view_seeds_shape_and_pinned_values() -> None:
    s = view_seeds(0, np.array([0, 1]), 2)
    assert s.dtype == np.uint64 and s.shape == (2, 2)
    # Pinned: caches store these seeds, so the hash must never change.
    assert s.tolist() == [
        [12000690684768258027, 12887754971724387502],
        [13456729213596202894, 3541656939269543228],
    ]
    assert view_seeds(2**64 - 1, np.array([7]), 1).tolist() == [[6337253623645832517]]
    assert A.uniform(np.array([1, 2], dtype=np.uint64), 5).tolist() == [
        0.7875311073193997,
        0.5809677130720047,
    ]


def test_view_seeds_depend_only_on_base_row_view() -> None:
    rows = np.array([5, 0, 17, 3, 99])
    full = view_seeds(11, rows, 3)
    for k, r in enumerate(rows):
        np.testing.assert_array_equal(view_seeds(11, np.array([r]), 3)[0], full[k])
    np.testing.assert_array_equal(view_seeds(11, rows, 2), full[:, :2])
    many = view_seeds(0, np.arange(2000), 4)
    assert len(np.unique(many)) == many.size
    assert not np.array_equal(view_seeds(1, rows, 3), full)
    assert view_seeds(0, np.array([], dtype=np.int64), 2).shape == (0, 2)
    with pytest.raises(UsageError):
        view_seeds(0, np.array([-1]), 1)


def test_uniform_range_and_spread() -> None:
    u = A.uniform(view_seeds(3, np.arange(20000), 1)[:, 0], 7)
    assert u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 1800


@pytest.mark.parametrize("strength", ["standard", "strong"])
@pytest.mark.parametrize(("name", "recipe", "raw"), CASES, ids=IDS)
def test_batch_independent_bit_identical(
    name: str, recipe: dict[str, Any], raw: torch.Tensor, strength: str
) -> None:
    seeds = view_seeds(5, np.arange(len(raw)), 1)[:, 0]
    full = augment(raw, seeds, recipe, strength)
    assert full.dtype == torch.float32 and full.device == raw.device
    for i in range(len(raw)):
        alone = augment(raw[i : i + 1], seeds[i : i + 1], recipe, strength)
        assert torch.equal(alone[0], full[i]), (name, strength, i)
    perm = np.array([4, 2, 8, 0, 1, 3, 5, 7, 6])
    assert torch.equal(augment(raw[perm], seeds[perm], recipe, strength), full[perm])
    doubled = augment(
        torch.cat([raw, raw[:3]]), np.concatenate([seeds, seeds[:3]]), recipe, strength
    )
    assert torch.equal(doubled[:9], full)
    assert torch.equal(doubled[9:], full[:3])
    again = augment(raw, seeds, recipe, strength)
    assert torch.equal(again, full)
    other = augment(raw, seeds + np.uint64(1), recipe, strength)
    assert not torch.equal(other, full)


@pytest.mark.parametrize(("name", "recipe", "raw"), CASES, ids=IDS)
def test_shapes_and_no_global_rng(name: str, recipe: dict[str, Any], raw: torch.Tensor) -> None:
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()
    seeds = view_seeds(0, np.arange(len(raw)), 1)[:, 0]
    x = augment(raw, seeds, recipe, "strong")
    c = clean(raw, recipe)
    assert x.shape == c.shape
    expected = (len(raw), 3, 32, 32) if name == "large" else tuple(raw.shape)
    assert c.shape == expected and c.dtype == torch.float32
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    assert augment(raw[:0], seeds[:0], recipe).shape == (0, *expected[1:])
    # Seeds as a torch tensor or Python ints work the same.
    assert torch.equal(
        augment(raw[:2], [int(s) for s in seeds[:2]], recipe), augment(raw[:2], seeds[:2], recipe)
    )


def test_small_image_geometry() -> None:
    recipe = A.small_image_recipe((0.5,) * 3, (0.25,) * 3, pad=0, flip=False)
    seeds = view_seeds(0, np.arange(9), 1)[:, 0]
    assert torch.equal(augment(SMALL_RAW, seeds, recipe), clean(SMALL_RAW, recipe))
    flip = A.small_image_recipe((0.5,) * 3, (0.25,) * 3, pad=0, flip=True)
    out = augment(SMALL_RAW, seeds, flip)
    ref = clean(SMALL_RAW, flip)
    flipped = [torch.equal(out[i], ref[i].flip(-1)) for i in range(9)]
    same = [torch.equal(out[i], ref[i]) for i in range(9)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)
    # Padding: every view is a shifted copy (zero fill) within +-pad pixels.
    padded = A.small_image_recipe((0.0,) * 3, (1.0,) * 3, pad=4, flip=False)
    out = augment(SMALL_RAW, seeds, padded) * 255
    src = SMALL_RAW.float()
    for i in range(9):
        hits = 0
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                big = F.pad(src[i], (4, 4, 4, 4))
                crop = big[:, 4 + dy : 4 + dy + 32, 4 + dx : 4 + dx + 32]
                hits += bool(torch.allclose(out[i], crop, atol=1e-3))
        assert hits == 1


def test_large_image_full_crop_is_plain_resize() -> None:
    recipe = A.large_image_recipe(16)
    recipe["scale"], recipe["ratio"] = [1.0, 1.0], [1.0, 1.0]
    recipe["mean"], recipe["std"] = [0.0] * 3, [1.0] * 3
    seeds = view_seeds(2, np.arange(9), 1)[:, 0]
    out = augment(LARGE_RAW, seeds, recipe)
    ref = F.interpolate(
        LARGE_RAW.float() / 255, size=(16, 16), mode="bilinear", align_corners=False
    )
    kinds = []
    for i in range(9):
        if torch.allclose(out[i], ref[i], atol=1e-5):
            kinds.append("same")
        elif torch.allclose(out[i], ref[i].flip(-1), atol=1e-5):
            kinds.append("flip")
        else:
            raise AssertionError(f"sample {i} is neither the resize nor its mirror")
    assert set(kinds) == {"same", "flip"}


def test_large_image_crops_vary_and_clean_is_centre() -> None:
    recipe = A.large_image_recipe(32)
    seeds = view_seeds(0, np.zeros(50, dtype=np.int64), 50)[0]
    raw = LARGE_RAW[:1].expand(50, -1, -1, -1)
    out = augment(raw, seeds, recipe)
    assert len({round(float(o.sum()), 2) for o in out}) > 40
    c = clean(LARGE_RAW[:1], recipe)
    m = torch.tensor(recipe["mean"]).reshape(1, 3, 1, 1)
    s = torch.tensor(recipe["std"]).reshape(1, 3, 1, 1)
    expected = (LARGE_RAW[:1, :, 2:34, 2:34].float() / 255 - m) / s
    torch.testing.assert_close(c, expected)


def test_rrc_boxes_follow_torchvision_rule() -> None:
    seeds = view_seeds(9, np.arange(4000), 1)[:, 0]
    top, left, h, w = A._rrc_boxes(seeds, 256, 256, (0.08, 1.0), (3 / 4, 4 / 3))
    assert np.all((h >= 1) & (w >= 1) & (top >= 0) & (left >= 0))
    assert np.all((top + h <= 256) & (left + w <= 256))
    area = h * w / 256**2
    assert area.min() > 0.07 and area.max() <= 1.0
    ratio = w / h
    assert ratio.min() > 0.7 and ratio.max() < 1.4


def test_signal_shift_and_noise() -> None:
    recipe = A.signal1d_recipe(standard={"shift": 3, "noise": 0.0, "scale": 0.0})
    raw = torch.arange(1, 41, dtype=torch.float32).reshape(1, 1, 40).repeat(200, 1, 1)
    seeds = view_seeds(0, np.arange(200), 1)[:, 0]
    out = augment(raw, seeds, recipe)
    shifts = set()
    for i in range(200):
        row = out[i, 0]
        first = int(torch.nonzero(row)[0])
        shift = first + 1 - int(row[first])  # out[t] = raw[t - shift] = t - shift + 1
        expected = torch.zeros(40)
        for t in range(40):
            if 0 <= t - shift < 40:
                expected[t] = t - shift + 1
        assert torch.equal(row, expected)
        shifts.add(shift)
    assert shifts == set(range(-3, 4))

    noisy = A.signal1d_recipe(standard={"shift": 0, "noise": 0.05, "scale": 0.0})
    zeros = torch.zeros(500, 1, 40)
    z = augment(zeros, view_seeds(1, np.arange(500), 1)[:, 0], noisy)
    assert abs(float(z.std()) - 0.05) < 0.003
    assert abs(float(z.mean())) < 0.003


def test_strong_colour_ops() -> None:
    recipe = A.small_image_recipe((0.0,) * 3, (1.0,) * 3, pad=0, flip=False)
    recipe["strong"] = {"jitter": 0.0, "grayscale": 1.0}
    seeds = view_seeds(0, np.arange(9), 1)[:, 0]
    g = augment(SMALL_RAW, seeds, recipe, "strong")
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    recipe["strong"] = {"jitter": 0.4, "grayscale": 0.0}
    j = augment(SMALL_RAW, seeds, recipe, "strong")
    assert j.min() >= 0 and j.max() <= 1
    assert not torch.equal(j, clean(SMALL_RAW, recipe))


def test_none_recipe_is_identity() -> None:
    raw = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    out = augment(raw, np.arange(3), {"kind": "none"})
    assert torch.equal(out, raw) and out is not raw
    assert torch.equal(clean(raw.double(), {"kind": "none"}), raw)


def test_augment_errors() -> None:
    recipe = A.small_image_recipe(A.CIFAR10_MEAN, A.CIFAR10_STD, pad=4, flip=True)
    seeds = np.arange(9)
    with pytest.raises(UsageError, match="strength"):
        augment(SMALL_RAW, seeds, recipe, "extreme")
    with pytest.raises(UsageError, match=r"one seed per sample \(9\), got 2"):
        augment(SMALL_RAW, seeds[:2], recipe)
    with pytest.raises(UsageError, match="recipe kind"):
        augment(SMALL_RAW, seeds, {"kind": "zoom"})
    with pytest.raises(UsageError, match="shape"):
        augment(SIGNAL_RAW, seeds, recipe)
    with pytest.raises(UsageError, match="at least 32x32"):
        clean(SMALL_RAW[:, :, :20, :20], A.large_image_recipe(32))
    with pytest.raises(UsageError, match="version"):
        clean(SMALL_RAW, {**recipe, "version": 99})
    with pytest.raises(UsageError, match="seeds"):
        augment(SMALL_RAW, -seeds - 1, recipe)
    with pytest.raises(UsageError, match="seeds"):
        augment(SMALL_RAW, [0.5] * 9, recipe)


def test_seed_types_agree() -> None:
    recipe = A.signal1d_recipe()
    big = [2**64 - 1, 5, 2**63 + 3]
    ref = augment(SIGNAL_RAW[:3], np.array(big, dtype=np.uint64), recipe)
    assert torch.equal(augment(SIGNAL_RAW[:3], big, recipe), ref)
    assert torch.equal(augment(SIGNAL_RAW[:3], torch.tensor(big, dtype=torch.uint64), recipe), ref)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("name", "recipe", "raw"), CASES, ids=IDS)
def test_cuda_matches_cpu(name: str, recipe: dict[str, Any], raw: torch.Tensor) -> None:
    seeds = view_seeds(5, np.arange(len(raw)), 1)[:, 0]
    for strength in ("standard", "strong"):
        cpu = augment(raw, seeds, recipe, strength)
        gpu = augment(raw.cuda(), seeds, recipe, strength)
        assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
        torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-4, rtol=1e-4)
        alone = augment(raw[:1].cuda(), seeds[:1], recipe, strength)
        torch.testing.assert_close(alone[0].cpu(), cpu[0], atol=2e-4, rtol=1e-4)
    assert clean(raw.cuda(), recipe).device.type == "cuda"
