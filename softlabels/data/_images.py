"""File-backed image datasets: path checks, decoding and the raw-batch loader.

Raw images are uint8 ``[3, base, base]`` with ``base = round(size * 256 / 224)``: decoded
with PIL, converted to RGB, resized (bilinear) so the shorter side is ``base`` and centre
cropped to ``base x base``. Training crops and the evaluation centre crop to ``size`` are
done later, batched, by :mod:`softlabels.data.augment`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import torch

from softlabels.data._base import Split
from softlabels.errors import SpecError, UsageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "base_size",
    "check_files_exist",
    "check_relpath",
    "check_size",
    "image_split",
    "read_image",
    "resolve_file",
    "resolve_root",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def check_size(size: int) -> int:
    if size < 8:
        raise SpecError(f"Expected an image size >= 8, got {size} (at size)")
    return size


def base_size(size: int) -> int:
    """Side of the stored raw image for crop size ``size`` (256 for 224)."""
    return round(size * 256 / 224)


def resolve_root(root: str, dataset: str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise SpecError(
            f"Expected root to be a directory, got {str(path)!r} (at root of {dataset}); "
            "check the path"
        )
    return path


def resolve_file(root: Path, name: str, key: str, dataset: str) -> Path:
    """A file option: relative to ``root`` unless absolute; it must exist."""
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = root / path
    if not path.is_file():
        raise SpecError(
            f"Expected an existing file, got {str(path)!r} (at {key} of {dataset}); check the path"
        )
    return path


def check_relpath(rel: str, where: str) -> str:
    """Reject ids that could leave the dataset root: absolute paths and '..' components."""
    posix = PurePosixPath(rel.replace("\\", "/"))
    if not rel or posix.is_absolute() or PureWindowsPath(rel).drive:
        raise UsageError(
            f"Expected a relative image path, got {rel!r} (at {where}); list paths relative to root"
        )
    if ".." in posix.parts:
        raise UsageError(
            f"Expected a path inside root, got {rel!r} with a '..' component (at {where})"
        )
    return rel


def check_files_exist(root: Path, relpaths: Sequence[str], where: str) -> None:
    """One UsageError naming the first missing file and how many are missing."""
    first: str | None = None
    missing = 0
    for rel in relpaths:
        if not os.path.isfile(os.path.join(root, rel)):
            missing += 1
            if first is None:
                first = rel
    if missing:
        raise UsageError(
            f"Missing image file {str(root / str(first))!r} ({missing} of {len(relpaths)} "
            f"listed files are missing, at {where}); check root and the list"
        )


def read_image(path: str | Path, base: int) -> np.ndarray:
    """Decode one image to uint8 ``[3, base, base]`` (shorter side resized, centre crop)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (base, base))  # JPEG: decode at a reduced scale >= base
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            rgb = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise UsageError(
            f"Cannot read image {str(path)!r} ({type(err).__name__}: {err}); replace the "
            "file or remove it from the list"
        ) from err
    w, h = rgb.size
    if w <= h:
        nw, nh = base, max(base, int(base * h / w))
    else:
        nw, nh = max(base, int(base * w / h)), base
    if (nw, nh) != (w, h):
        rgb = rgb.resize((nw, nh), Image.Resampling.BILINEAR)
    left = round((nw - base) / 2)
    top = round((nh - base) / 2)
    if (nw, nh) != (base, base):
        rgb = rgb.crop((left, top, left + base, top + base))
    arr = np.asarray(rgb, dtype=np.uint8)  # [H, W, 3]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class ImageFiles:
    """Loader from row indices to a raw uint8 batch ``[B, 3, base, base]`` (picklable)."""

    def __init__(self, root: str | Path, relpaths: Sequence[str], base: int) -> None:
        self.root = str(root)
        self.relpaths = list(relpaths)
        self.base = int(base)

    def __len__(self) -> int:
        return len(self.relpaths)

    def __call__(self, indices: np.ndarray) -> torch.Tensor:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), 3, self.base, self.base), dtype=np.uint8)
        for k, i in enumerate(idx.tolist()):
            out[k] = read_image(os.path.join(self.root, self.relpaths[i]), self.base)
        return torch.from_numpy(out)


def image_split(
    name: str, root: Path, relpaths: list[str], labels: Sequence[int], base: int, where: str
) -> Split:
    """A file-backed split; checks the ids are safe and that every file exists."""
    for rel in relpaths:
        check_relpath(rel, where)
    check_files_exist(root, relpaths, where)
    return Split(
        name=name,
        ids=list(relpaths),
        labels=np.asarray(labels, dtype=np.int64),
        loader=ImageFiles(root, relpaths, base),
    )
