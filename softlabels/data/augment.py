"""Seeded, batched, device-agnostic input transforms.

Every random choice of a training view (crop box, flip, shift, noise, colour factors) is a
pure function of the view's 64-bit seed, derived with a counter-based hash (splitmix64)
in NumPy: no global RNG is touched. A cache can therefore record ``(row, seed)`` and the
student can replay exactly the view the teacher saw.

On CPU the output for a sample is bit-identical whether it is augmented alone or inside any
batch: parameters are computed per sample, and the pixel work uses only element-wise
operations, integer gathers, exact integer sums and ``grid_sample`` (whose result for one
output pixel does not depend on the rest of the batch). On an accelerator the same seeds
give the same views up to floating-point rounding of that device.

A *recipe* is a JSON-able dict (recorded in caches and runs). Kinds:

``{"kind": "none"}``
    identity (inputs are cast to float32).
``{"kind": "signal1d", "mean": [..], "std": [..], "standard": {...}, "strong": {...}}``
    raw float32 ``[B, C, L]``; each strength has ``shift`` (max integer shift, zero fill),
    ``noise`` (sd of additive Gaussian noise) and ``scale`` (amplitude factor drawn from
    ``[1 - scale, 1 + scale]``).
``{"kind": "small_image", "mean", "std", "pad", "flip", "standard": {...}, "strong": {...}}``
    raw uint8 ``[B, C, H, W]``; zero-pad ``pad`` then random crop back to ``H x W``,
    horizontal flip with probability 1/2 when ``flip``.
``{"kind": "large_image", "size", "mean", "std", "scale", "ratio", "flip", ...}``
    raw uint8 ``[B, C, base, base]``; random-resized-crop (torchvision's rule: 10 tries,
    then a centre fallback) resampled bilinearly to ``size x size``, flip; ``clean`` is
    the centre ``size x size`` crop.

For images each strength has ``jitter`` (brightness, contrast and saturation factors drawn
from ``[1 - jitter, 1 + jitter]``, applied in that fixed order: contrast, brightness,
saturation; the contrast mean is the exact grey mean of the raw image) and ``grayscale``
(probability of a grey view). "strong" uses jitter 0.4 and grayscale 0.2 (CBD's stronger
augmentation); "standard" uses neither. All kinds end with per-channel normalisation
``(x - mean) / std`` (images scaled to ``[0, 1]`` first).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from softlabels.errors import UsageError

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NONE_RECIPE",
    "STRENGTHS",
    "augment",
    "clean",
    "large_image_recipe",
    "signal1d_recipe",
    "small_image_recipe",
    "uniform",
    "view_seeds",
]

RECIPE_VERSION = 1
STRENGTHS = ("standard", "strong")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
GREY_WEIGHTS = (0.2989, 0.587, 0.114)  # as torchvision's rgb_to_grayscale
_GREY_INT = (299, 587, 114)  # exact integer weights for the contrast mean (sum 1000)

NONE_RECIPE: dict[str, Any] = {"kind": "none", "version": RECIPE_VERSION}

# ---------------------------------------------------------------------------------------
# Counter-based randomness
# ---------------------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_ROW_SALT = 0x5EED0001
_VIEW_SALT = 0x5EED0002
_STREAM_SALT = 0x5EED0003

# Stream ids: one per random parameter. Never renumber (recorded views depend on them).
_S_SHIFT = 1
_S_SCALE = 2
_S_FLIP = 3
_S_CROP_X = 4
_S_CROP_Y = 5
_S_CONTRAST = 6
_S_BRIGHTNESS = 7
_S_SATURATION = 8
_S_GREY = 9
_S_RRC = 100  # 100 .. 139: 10 attempts x (area, ratio, top, left)
_S_NOISE = 1 << 32  # + 2 * position (+1): Box-Muller pairs


def _u64(x: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(x, dtype=np.uint64))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MUL1
        z = (z ^ (z >> np.uint64(27))) * _MUL2
        return z ^ (z >> np.uint64(31))


def _combine(h: np.ndarray, word: np.ndarray, salt: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _splitmix64(h ^ _splitmix64(word + np.uint64(salt)))


def _nonneg_u64(values: Any, what: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values))
    if arr.dtype == np.uint64:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise UsageError(f"Expected integer {what}, got dtype {arr.dtype} (at {what})")
    if arr.size and arr.min() < 0:
        raise UsageError(f"Expected {what} >= 0, got {int(arr.min())} (at {what})")
    return arr.astype(np.uint64)


def view_seeds(base_seed: int, rows: np.ndarray, num_views: int) -> np.ndarray:
    """Seeds ``uint64 [len(rows), num_views]``: a hash of ``(base_seed, row, view)`` only."""
    if int(num_views) != num_views or num_views < 0:
        raise UsageError(f"Expected num_views >= 0, got {num_views!r} (at num_views)")
    r = _nonneg_u64(rows, "rows").reshape(-1)
    base = _splitmix64(_u64(int(base_seed) & _MASK64))
    per_row = _combine(base, r, _ROW_SALT)
    views = np.arange(int(num_views), dtype=np.uint64)
    return _combine(per_row[:, None], views[None, :], _VIEW_SALT)


def uniform(seeds: np.ndarray, stream: int | np.ndarray) -> np.ndarray:
    """Uniform float64 in ``[0, 1)`` from ``(seed, stream)``; ``seeds`` and ``stream`` broadcast."""
    s = np.asarray(seeds, dtype=np.uint64)
    st = np.asarray(stream, dtype=np.uint64)
    bits = _combine(s, st, _STREAM_SALT)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _randint(seeds: np.ndarray, stream: int, low: int, high: int) -> np.ndarray:
    """Integers uniform in ``[low, high]`` (inclusive; ``low``/``high`` may be arrays)."""
    u = uniform(seeds, stream)
    span = np.asarray(high) - np.asarray(low) + 1
    return np.asarray(low) + np.minimum(np.floor(u * span).astype(np.int64), span - 1)


def _normal(seeds: np.ndarray, length: int) -> np.ndarray:
    """Standard normal float64 ``[B, length]`` by Box-Muller on hashed uniforms."""
    pos = np.arange(length, dtype=np.uint64) * np.uint64(2) + np.uint64(_S_NOISE)
    u1 = uniform(seeds[:, None], pos[None, :])
    u2 = uniform(seeds[:, None], pos[None, :] + np.uint64(1))
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)


# ---------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def signal1d_recipe(
    mean: Any = (0.0,),
    std: Any = (1.0,),
    standard: dict[str, float] | None = None,
    strong: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Recipe for float signals ``[B, C, L]`` (MNIST-1D)."""
    return {
        "kind": "signal1d",
        "version": RECIPE_VERSION,
        "mean": _floats(mean),
        "std": _floats(std),
        "standard": dict(standard or {"shift": 3, "noise": 0.05, "scale": 0.0}),
        "strong": dict(strong or {"shift": 6, "noise": 0.1, "scale": 0.2}),
    }


def small_image_recipe(mean: Any, std: Any, pad: int, flip: bool) -> dict[str, Any]:
    """Recipe for small uint8 images kept at full size (CIFAR: pad 4 + flip; digits: pad 1)."""
    return {
        "kind": "small_image",
        "version": RECIPE_VERSION,
        "mean": _floats(mean),
        "std": _floats(std),
        "pad": int(pad),
        "flip": bool(flip),
        "standard": {"jitter": 0.0, "grayscale": 0.0},
        "strong": {"jitter": 0.4, "grayscale": 0.2},
    }


def large_image_recipe(
    size: int, mean: Any = IMAGENET_MEAN, std: Any = IMAGENET_STD
) -> dict[str, Any]:
    """Recipe for large images stored at base size ``round(size * 256 / 224)``."""
    return {
        "kind": "large_image",
        "version": RECIPE_VERSION,
        "size": int(size),
        "base": round(size * 256 / 224),
        "mean": _floats(mean),
        "std": _floats(std),
        "scale": [0.08, 1.0],
        "ratio": [3 / 4, 4 / 3],
        "flip": True,
        "standard": {"jitter": 0.0, "grayscale": 0.0},
        "strong": {"jitter": 0.4, "grayscale": 0.2},
    }


def _field(recipe: dict[str, Any], key: str) -> Any:
    try:
        return recipe[key]
    except KeyError:
        raise UsageError(
            f"Expected key {key!r} in the {recipe.get('kind')!r} recipe, got keys {sorted(recipe)}"
        ) from None


def _kind(recipe: Any) -> str:
    if not isinstance(recipe, dict) or "kind" not in recipe:
        raise UsageError(f"Expected a recipe dict with a 'kind', got {recipe!r}")
    kind = recipe["kind"]
    if kind not in ("none", "signal1d", "small_image", "large_image"):
        raise UsageError(
            f"Expected recipe kind none, signal1d, small_image or large_image, got {kind!r}"
        )
    version = recipe.get("version", RECIPE_VERSION)
    if version != RECIPE_VERSION:
        raise UsageError(
            f"Expected recipe version {RECIPE_VERSION}, got {version!r}; this softlabels "
            "cannot replay views of that version"
        )
    return str(kind)


def _strength(recipe: dict[str, Any], strength: str) -> dict[str, Any]:
    if strength not in STRENGTHS:
        raise UsageError(f"Expected strength 'standard' or 'strong', got {strength!r}")
    params = _field(recipe, strength)
    if not isinstance(params, dict):
        raise UsageError(f"Expected a dict at recipe[{strength!r}], got {params!r}")
    return params


# ---------------------------------------------------------------------------------------
# Pixel work
# ---------------------------------------------------------------------------------------


def _check_ndim(raw: torch.Tensor, ndim: int, kind: str) -> None:
    if not isinstance(raw, torch.Tensor):
        raise UsageError(f"Expected a torch.Tensor of raw inputs, got {type(raw).__name__}")
    if raw.ndim != ndim:
        shape = "[B, C, L]" if ndim == 3 else "[B, C, H, W]"
        raise UsageError(
            f"Expected raw {kind} input of shape {shape}, got {tuple(raw.shape)} (at raw)"
        )


def _per_sample(values: np.ndarray, like: torch.Tensor, ndim: int) -> torch.Tensor:
    """A float32 [B, 1, ...] tensor on ``like``'s device from per-sample float64 values."""
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return t.reshape((-1,) + (1,) * (ndim - 1)).to(like.device)


def _normalise(x: torch.Tensor, recipe: dict[str, Any]) -> torch.Tensor:
    mean = _floats(_field(recipe, "mean"))
    std = _floats(_field(recipe, "std"))
    c = x.shape[1]
    if len(mean) == 1 and c > 1:
        mean, std = mean * c, std * c
    if len(mean) != c or len(std) != c:
        raise UsageError(
            f"Expected {c} channel means and stds, got {len(mean)} and {len(std)} (at recipe)"
        )
    shape = (1, c) + (1,) * (x.ndim - 2)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).reshape(shape)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).reshape(shape)
    return ((x - m) / s).contiguous()


def _to_unit(raw: torch.Tensor) -> torch.Tensor:
    """Images to float32 in [0, 1] (uint8 is divided by 255; floats are taken as they are)."""
    if raw.dtype == torch.uint8:
        return raw.to(torch.float32) / 255.0
    return raw.to(torch.float32)


def _grey(x: torch.Tensor) -> torch.Tensor:
    wr, wg, wb = GREY_WEIGHTS
    return x[:, 0:1] * wr + x[:, 1:2] * wg + x[:, 2:3] * wb


def _grey_mean(raw: torch.Tensor) -> np.ndarray:
    """Per-sample mean grey level in [0, 1], computed exactly from uint8 pixels."""
    b, c, h, w = raw.shape
    if raw.dtype == torch.uint8:
        # Integer channel sums are exact, so the mean does not depend on the batch.
        sums = raw.sum(dim=(2, 3), dtype=torch.int64).cpu().numpy()  # [B, C]
        if c == 3:
            total = sums @ np.asarray(_GREY_INT, dtype=np.int64)
            return total.astype(np.float64) / (1000 * 255 * h * w)
        return sums.sum(axis=1).astype(np.float64) / (255 * h * w * c)
    # Floats: summed in float64 (not guaranteed batch-independent to the last bit).
    x = raw.to(torch.float64)
    g = _grey(x) if c == 3 else x.mean(dim=1, keepdim=True)
    return g.reshape(b, -1).mean(dim=1).cpu().numpy()


def _colour(
    x: torch.Tensor, raw: torch.Tensor, seeds: np.ndarray, params: dict[str, Any]
) -> torch.Tensor:
    """Colour jitter (contrast, brightness, saturation) and random grayscale on [0, 1] images."""
    jitter = float(params.get("jitter", 0.0))
    p_grey = float(params.get("grayscale", 0.0))
    c = x.shape[1]
    if jitter > 0:
        lo, hi = max(0.0, 1.0 - jitter), 1.0 + jitter
        cf = lo + (hi - lo) * uniform(seeds, _S_CONTRAST)
        offset = (1.0 - cf) * _grey_mean(raw)
        x = (x * _per_sample(cf, x, 4) + _per_sample(offset, x, 4)).clamp_(0.0, 1.0)
        bf = lo + (hi - lo) * uniform(seeds, _S_BRIGHTNESS)
        x = (x * _per_sample(bf, x, 4)).clamp_(0.0, 1.0)
        if c == 3:
            sf = lo + (hi - lo) * uniform(seeds, _S_SATURATION)
            g = _grey(x)
            x = (x * _per_sample(sf, x, 4) + g * _per_sample(1.0 - sf, x, 4)).clamp_(0.0, 1.0)
    if p_grey > 0 and c == 3:
        use = torch.from_numpy(uniform(seeds, _S_GREY) < p_grey).to(x.device)
        x = torch.where(use.reshape(-1, 1, 1, 1), _grey(x).expand_as(x), x)
    return x


def _seeds(seeds: Any, batch: int) -> np.ndarray:
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.detach().cpu().numpy()
    if isinstance(seeds, np.ndarray) and seeds.dtype != object:
        arr = seeds if seeds.dtype == np.uint64 else _nonneg_u64(seeds, "seeds")
    else:  # Python ints (possibly beyond int64): exact conversion, no float detour
        values = np.asarray(seeds, dtype=object).reshape(-1).tolist()
        if not all(isinstance(v, numbers.Integral) and 0 <= v <= _MASK64 for v in values):
            raise UsageError("Expected integer seeds in [0, 2**64), got another value (at seeds)")
        arr = np.array([int(v) for v in values], dtype=np.uint64)
    arr = arr.reshape(-1)
    if len(arr) != batch:
        raise UsageError(f"Expected one seed per sample ({batch}), got {len(arr)} (at seeds)")
    return arr


def _signal_augment(
    raw: torch.Tensor, seeds: np.ndarray, recipe: dict[str, Any], params: dict[str, Any]
) -> torch.Tensor:
    x = raw.to(torch.float32)
    b, c, length = x.shape
    shift = int(params.get("shift", 0))
    if shift > 0:
        k = _randint(seeds, _S_SHIFT, -shift, shift)
        src = np.arange(length)[None, :] - k[:, None]
        valid = torch.from_numpy((src >= 0) & (src < length)).to(x.device)
        idx = torch.from_numpy(np.clip(src, 0, length - 1)).to(x.device)
        moved = x.gather(2, idx[:, None, :].expand(b, c, length))
        x = torch.where(valid[:, None, :], moved, torch.zeros((), device=x.device))
    scale = float(params.get("scale", 0.0))
    if scale > 0:
        factor = 1.0 - scale + 2.0 * scale * uniform(seeds, _S_SCALE)
        x = x * _per_sample(factor, x, 3)
    noise = float(params.get("noise", 0.0))
    if noise > 0:
        z = _normal(seeds, c * length).reshape(b, c, length) * noise
        x = x + torch.from_numpy(z.astype(np.float32)).to(x.device)
    return _normalise(x, recipe)


def _small_augment(
    raw: torch.Tensor, seeds: np.ndarray, recipe: dict[str, Any], params: dict[str, Any]
) -> torch.Tensor:
    b, _, h, w = raw.shape
    pad = int(_field(recipe, "pad"))
    oy = _randint(seeds, _S_CROP_Y, 0, 2 * pad) - pad
    ox = _randint(seeds, _S_CROP_X, 0, 2 * pad) - pad
    cols = np.arange(w)[None, :].repeat(b, axis=0)
    if bool(_field(recipe, "flip")):
        flip = uniform(seeds, _S_FLIP) < 0.5
        cols[flip] = cols[flip, ::-1]
    rows = oy[:, None] + np.arange(h)[None, :]
    cols = ox[:, None] + cols
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    dev = raw.device
    ri = torch.from_numpy(np.clip(rows, 0, h - 1)).to(dev)
    ci = torch.from_numpy(np.clip(cols, 0, w - 1)).to(dev)
    bi = torch.arange(b, device=dev)
    picked = raw[bi[:, None, None], :, ri[:, :, None], ci[:, None, :]]  # [B, H, W, C]
    picked = picked.permute(0, 3, 1, 2)
    x = _to_unit(picked)
    mask = torch.from_numpy(valid).to(dev)[:, None]
    x = torch.where(mask, x, torch.zeros((), device=dev))
    x = _colour(x, raw, seeds, params)
    return _normalise(x, recipe)


def _rrc_boxes(
    seeds: np.ndarray, h: int, w: int, scale: Any, ratio: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """torchvision's RandomResizedCrop.get_params, vectorised: (top, left, height, width)."""
    b = len(seeds)
    area = float(h * w)
    s0, s1 = float(scale[0]), float(scale[1])
    lr0, lr1 = math.log(float(ratio[0])), math.log(float(ratio[1]))
    tries = 10
    streams = _S_RRC + 4 * np.arange(tries, dtype=np.uint64)
    sd = seeds[:, None]
    target = area * (s0 + (s1 - s0) * uniform(sd, streams))
    aspect = np.exp(lr0 + (lr1 - lr0) * uniform(sd, streams + np.uint64(1)))
    cw = np.round(np.sqrt(target * aspect)).astype(np.int64)
    ch = np.round(np.sqrt(target / aspect)).astype(np.int64)
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = np.argmax(ok, axis=1)
    found = ok[np.arange(b), first]
    ch_sel = ch[np.arange(b), first]
    cw_sel = cw[np.arange(b), first]
    top_u = uniform(sd, streams + np.uint64(2))[np.arange(b), first]
    left_u = uniform(sd, streams + np.uint64(3))[np.arange(b), first]
    top = np.minimum(np.floor(top_u * (h - ch_sel + 1)).astype(np.int64), h - ch_sel)
    left = np.minimum(np.floor(left_u * (w - cw_sel + 1)).astype(np.int64), w - cw_sel)
    # Fallback when no try fits: a centre crop with the ratio clamped to the allowed range.
    in_ratio = w / h
    if in_ratio < min(ratio):
        fw, fh = w, round(w / min(ratio))
    elif in_ratio > max(ratio):
        fh, fw = h, round(h * max(ratio))
    else:
        fw, fh = w, h
    ch_sel = np.where(found, ch_sel, fh)
    cw_sel = np.where(found, cw_sel, fw)
    top = np.where(found, top, (h - fh) // 2)
    left = np.where(found, left, (w - fw) // 2)
    return top, left, ch_sel, cw_sel


def _large_augment(
    raw: torch.Tensor, seeds: np.ndarray, recipe: dict[str, Any], params: dict[str, Any]
) -> torch.Tensor:
    b, _, h, w = raw.shape
    size = int(_field(recipe, "size"))
    top, left, ch, cw = _rrc_boxes(seeds, h, w, _field(recipe, "scale"), _field(recipe, "ratio"))
    # Output pixel q samples input x = left + (q + 1/2) * cw / size (pixel units); in the
    # normalised coordinates of grid_sample (align_corners=False) that is a + s * (q + 1/2).
    ax = 2.0 * left / w - 1.0
    sx = 2.0 * cw / (size * w)
    ay = 2.0 * top / h - 1.0
    sy = 2.0 * ch / (size * h)
    q = np.arange(size, dtype=np.float64)[None, :] + 0.5
    qx = np.repeat(q, b, axis=0)
    if bool(_field(recipe, "flip")):
        flip = uniform(seeds, _S_FLIP) < 0.5
        qx[flip] = size - qx[flip]
    dev = raw.device
    lin_x = torch.from_numpy(qx.astype(np.float32)).to(dev)
    lin_y = torch.from_numpy(np.repeat(q, b, axis=0).astype(np.float32)).to(dev)
    gx = _per_sample(ax, lin_x, 2) + _per_sample(sx, lin_x, 2) * lin_x  # [B, size]
    gy = _per_sample(ay, lin_y, 2) + _per_sample(sy, lin_y, 2) * lin_y
    grid = torch.stack(
        (gx[:, None, :].expand(b, size, size), gy[:, :, None].expand(b, size, size)), dim=-1
    )
    x = F.grid_sample(
        _to_unit(raw), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    x = _colour(x, raw, seeds, params)
    return _normalise(x, recipe)


def _centre_crop(raw: torch.Tensor, size: int) -> torch.Tensor:
    h, w = raw.shape[-2:]
    if h < size or w < size:
        raise UsageError(
            f"Expected raw images of at least {size}x{size}, got {h}x{w} (at raw); load them "
            "at the dataset's base size"
        )
    top = round((h - size) / 2)
    left = round((w - size) / 2)
    return raw[..., top : top + size, left : left + size]


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------


def _identity(raw: torch.Tensor) -> torch.Tensor:
    out = raw.to(torch.float32)
    return out.clone() if out is raw else out


def clean(raw: torch.Tensor, recipe: dict[str, Any]) -> torch.Tensor:
    """Evaluation transform and normalisation: float32 on ``raw``'s device."""
    kind = _kind(recipe)
    if kind == "none":
        return _identity(raw)
    if kind == "signal1d":
        _check_ndim(raw, 3, kind)
        return _normalise(raw.to(torch.float32), recipe)
    _check_ndim(raw, 4, kind)
    if kind == "large_image":
        raw = _centre_crop(raw, int(_field(recipe, "size")))
    return _normalise(_to_unit(raw), recipe)


def augment(
    raw: torch.Tensor, seeds: Any, recipe: dict[str, Any], strength: str = "standard"
) -> torch.Tensor:
    """Seeded training view of each sample: float32 on ``raw``'s device.

    ``seeds`` holds one uint64 per sample (see :func:`view_seeds`); the view of a sample
    depends only on its raw input, its seed, the recipe and ``strength``.
    """
    kind = _kind(recipe)
    if kind == "none":
        if strength not in STRENGTHS:
            raise UsageError(f"Expected strength 'standard' or 'strong', got {strength!r}")
        return _identity(raw)
    params = _strength(recipe, strength)
    _check_ndim(raw, 3 if kind == "signal1d" else 4, kind)
    s = _seeds(seeds, raw.shape[0])
    if raw.shape[0] == 0:
        shape = tuple(raw.shape)
        if kind == "large_image":
            size = int(_field(recipe, "size"))
            shape = (0, shape[1], size, size)
        return torch.empty(shape, dtype=torch.float32, device=raw.device)
    if kind == "signal1d":
        return _signal_augment(raw, s, recipe, params)
    if kind == "small_image":
        return _small_augment(raw, s, recipe, params)
    return _large_augment(raw, s, recipe, params)
