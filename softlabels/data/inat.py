"""iNaturalist 2018 (and any COCO-style classification JSON).

Spec keys: ``root`` (required; image root), ``train`` / ``test`` (JSON files, relative to
``root`` unless absolute; defaults ``train2018.json`` / ``val2018.json``), ``size``.
Each JSON has ``images`` (``id``, ``file_name``), ``annotations`` (``image_id``,
``category_id``) and ``categories`` (``id``, ``name``). Labels are the category ids of the
training file mapped to ``0 .. C-1`` in ascending id order; class names come from
``categories``. Sample ids are the ``file_name`` values, in the order of ``images``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from softlabels.data._base import Dataset
from softlabels.data._images import base_size, check_size, image_split, resolve_file, resolve_root
from softlabels.data._registry import register_dataset
from softlabels.data._spec import REQUIRED
from softlabels.data.augment import large_image_recipe
from softlabels.errors import UsageError

__all__ = ["inat", "read_coco_json"]


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise UsageError(f"Cannot read JSON {str(path)!r} ({err}); check the file") from err
    if not isinstance(data, dict):
        raise UsageError(f"Expected a JSON object, got {type(data).__name__} (at {path})")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise UsageError(f"Expected a list at {key!r}, got {data.get(key)!r:.40} (at {path})")
    return data


def _categories(data: dict[str, Any], path: Path) -> dict[int, str]:
    cats = data.get("categories")
    if cats is None:  # no table: name the classes by their ids
        return {int(a["category_id"]): str(a["category_id"]) for a in data["annotations"]}
    if not isinstance(cats, list):
        raise UsageError(f"Expected a list at 'categories', got {type(cats).__name__} (at {path})")
    try:
        return {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(
            f"Expected categories with integer 'id' and 'name', got {err!r} (at {path})"
        ) from None


def read_coco_json(path: Path) -> tuple[list[str], list[int], dict[int, str]]:
    """(file names, category ids, category id -> name) of a COCO-style JSON."""
    data = _load_json(path)
    try:
        by_image: dict[Any, int] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann["image_id"], int(ann["category_id"]))
        files: list[str] = []
        cats: list[int] = []
        for img in data["images"]:
            if img["id"] not in by_image:
                raise UsageError(
                    f"Expected an annotation for every image, got none for image id "
                    f"{img['id']!r} ({img.get('file_name')!r}) (at {path})"
                )
            files.append(str(img["file_name"]))
            cats.append(by_image[img["id"]])
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(
            f"Expected COCO-style images (id, file_name) and annotations (image_id, "
            f"category_id), got a record without {err} (at {path})"
        ) from None
    if not files:
        raise UsageError(f"Expected at least one image, got none (at {path})")
    return files, cats, _categories(data, path)


@register_dataset(
    "inat",
    defaults={"root": REQUIRED, "train": "train2018.json", "test": "val2018.json", "size": 224},
)
def inat(spec: str, root: str, train: str, test: str, size: int) -> Dataset:
    """iNaturalist 2018: 8142 classes, 437.5k training images, 24.4k validation images."""
    check_size(size)
    root_path = resolve_root(root, "inat")
    train_file = resolve_file(root_path, train, "train", "inat")
    test_file = resolve_file(root_path, test, "test", "inat")
    train_files, train_cats, names = read_coco_json(train_file)
    test_files, test_cats, _ = read_coco_json(test_file)
    ids = sorted(names.keys() | set(train_cats))
    index = {cid: k for k, cid in enumerate(ids)}
    unknown = [c for c in test_cats if c not in index]
    if unknown:
        raise UsageError(
            f"Expected test categories that the training file knows, got category id "
            f"{unknown[0]} ({len(unknown)} test images) (at {test_file})"
        )
    base = base_size(size)
    return Dataset(
        spec=spec,
        name="inat",
        class_names=[names.get(cid, str(cid)) for cid in ids],
        train=image_split(
            "train",
            root_path,
            train_files,
            [index[c] for c in train_cats],
            base,
            f"inat train {train_file}",
        ),
        test=image_split(
            "test",
            root_path,
            test_files,
            [index[c] for c in test_cats],
            base,
            f"inat test {test_file}",
        ),
        family="image",
        recipe=large_image_recipe(size),
    )
