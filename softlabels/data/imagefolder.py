"""A folder per class: ``root/<train>/<class>/**/<image>`` and ``root/<test>/<class>/...``.

Spec keys: ``root`` (required), ``train`` (default ``"train"``), ``test`` (default
``"test"``), ``size``. Classes are the sub-folders of the training folder sorted by name;
the test folder must have the same classes. Images (by extension, searched recursively)
are ordered by path; sample ids are their paths relative to ``root``.
"""

from __future__ import annotations

import os
from pathlib import Path

from softlabels.data._base import Dataset, Split
from softlabels.data._images import (
    IMAGE_EXTENSIONS,
    base_size,
    check_size,
    image_split,
    resolve_root,
)
from softlabels.data._registry import register_dataset
from softlabels.data._spec import REQUIRED
from softlabels.data.augment import large_image_recipe
from softlabels.errors import SpecError, UsageError

__all__ = ["imagefolder", "scan_image_folder"]


def _folder(root: Path, sub: str, key: str) -> Path:
    path = Path(sub).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_relative_to(root):
        raise SpecError(
            f"Expected a folder inside root {str(root)!r}, got {str(path)!r} (at {key} of "
            "imagefolder); give it relative to root"
        )
    if not path.is_dir():
        raise SpecError(
            f"Expected a folder of class folders, got {str(path)!r} (at {key} of imagefolder)"
        )
    return path


def scan_image_folder(root: Path, folder: Path) -> tuple[list[str], list[str], list[int]]:
    """(class names, image paths relative to ``root``, labels) of one split folder."""
    classes = sorted(
        e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
    )
    if not classes:
        raise UsageError(f"Expected class sub-folders, got none (at {folder})")
    paths: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(folder / cls, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in filenames:
                if fn.lower().endswith(IMAGE_EXTENSIONS) and not fn.startswith("."):
                    found.append(Path(dirpath, fn).relative_to(root).as_posix())
        found.sort()
        paths.extend(found)
        labels.extend([label] * len(found))
    return classes, paths, labels


def _split(name: str, root: Path, folder: Path, base: int) -> tuple[list[str], Split]:
    classes, paths, labels = scan_image_folder(root, folder)
    if not paths:
        raise UsageError(f"Expected images in the class folders, got none (at {folder})")
    return classes, image_split(name, root, paths, labels, base, f"imagefolder {name} {folder}")


@register_dataset(
    "imagefolder", defaults={"root": REQUIRED, "train": "train", "test": "test", "size": 224}
)
def imagefolder(spec: str, root: str, train: str, test: str, size: int) -> Dataset:
    """Any dataset laid out as one folder per class (like torchvision's ImageFolder)."""
    check_size(size)
    root_path = resolve_root(root, "imagefolder")
    train_dir = _folder(root_path, train, "train")
    test_dir = _folder(root_path, test, "test")
    base = base_size(size)
    train_classes, train_split = _split("train", root_path, train_dir, base)
    test_classes, test_split = _split("test", root_path, test_dir, base)
    if test_classes != train_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise UsageError(
            f"Expected the same class folders in {train_dir} and {test_dir}, got "
            f"{len(only_train)} only in train {only_train[:3]} and {len(only_test)} only in "
            f"test {only_test[:3]}; add or remove class folders"
        )
    return Dataset(
        spec=spec,
        name="imagefolder",
        class_names=train_classes,
        train=train_split,
        test=test_split,
        family="image",
        recipe=large_image_recipe(size),
    )
