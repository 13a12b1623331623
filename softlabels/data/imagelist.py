"""ImageNet-LT and Places-LT: images listed in text files of ``relative/path label`` lines.

Spec keys: ``root`` (required; the image root), ``train`` and ``test`` (list files,
relative to ``root`` unless absolute), ``size`` (crop size, default 224; raw images are
stored at ``round(size * 256 / 224)``), ``classes`` (number of classes; 0 infers
``max label + 1``). Sample ids are the listed relative paths, in list order. The lists
are used as given (they are long-tailed already); no class names ship with them, so classes
are named ``"0" .. "C-1"``.
"""

from __future__ import annotations

from pathlib import Path

from softlabels.data._base import Dataset
from softlabels.data._images import base_size, check_size, image_split, resolve_file, resolve_root
from softlabels.data._registry import register_dataset
from softlabels.data._spec import REQUIRED
from softlabels.data.augment import large_image_recipe
from softlabels.errors import SpecError, UsageError

__all__ = ["build_image_list_dataset", "imagenet_lt", "places_lt", "read_image_list"]


def read_image_list(path: Path) -> tuple[list[str], list[int]]:
    """Parse a ``relative/path label`` list (blank lines and ``#`` comments skipped)."""
    paths: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            pieces = text.rsplit(None, 1)
            if len(pieces) != 2:
                raise UsageError(
                    f"Expected 'relative/path label', got {text!r} (at {path}:{lineno})"
                )
            rel, lab = pieces
            try:
                label = int(lab)
            except ValueError:
                raise UsageError(
                    f"Expected an integer label, got {lab!r} (at {path}:{lineno})"
                ) from None
            paths.append(rel)
            labels.append(label)
    if not paths:
        raise UsageError(f"Expected at least one 'relative/path label' line, got none (at {path})")
    return paths, labels


def build_image_list_dataset(
    spec: str, name: str, root: str, train: str, test: str, size: int, classes: int
) -> Dataset:
    check_size(size)
    if classes < 0:
        raise SpecError(f"Expected classes >= 0 (0 = infer), got {classes} (at classes)")
    root_path = resolve_root(root, name)
    train_file = resolve_file(root_path, train, "train", name)
    test_file = resolve_file(root_path, test, "test", name)
    train_paths, train_labels = read_image_list(train_file)
    test_paths, test_labels = read_image_list(test_file)
    num_classes = classes or max(max(train_labels), max(test_labels)) + 1
    base = base_size(size)
    train_split = image_split(
        "train", root_path, train_paths, train_labels, base, f"{name} train list {train_file}"
    )
    test_split = image_split(
        "test", root_path, test_paths, test_labels, base, f"{name} test list {test_file}"
    )
    return Dataset(
        spec=spec,
        name=name,
        class_names=[str(c) for c in range(num_classes)],
        train=train_split,
        test=test_split,
        family="image",
        recipe=large_image_recipe(size),
    )


@register_dataset(
    "imagenet-lt",
    defaults={
        "root": REQUIRED,
        "train": "ImageNet_LT_train.txt",
        "test": "ImageNet_LT_test.txt",
        "size": 224,
        "classes": 0,
    },
)
def imagenet_lt(spec: str, root: str, train: str, test: str, size: int, classes: int) -> Dataset:
    """ImageNet-LT (Liu et al., 2019): 1000 classes, 115.8k training images."""
    return build_image_list_dataset(spec, "imagenet-lt", root, train, test, size, classes)


@register_dataset(
    "places-lt",
    defaults={
        "root": REQUIRED,
        "train": "Places_LT_train.txt",
        "test": "Places_LT_test.txt",
        "size": 224,
        "classes": 0,
    },
)
def places_lt(spec: str, root: str, train: str, test: str, size: int, classes: int) -> Dataset:
    """Places-LT (Liu et al., 2019): 365 classes, 62.5k training images."""
    return build_image_list_dataset(spec, "places-lt", root, train, test, size, classes)
