"""Fashion-MNIST-LT from the standard IDX files (no download).

Spec keys: ``root`` (the folder holding ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
raw or as ``.gz``; default ``/usr/share/datasets/fashion-mnist``, where the Debian package
``dataset-fashion-mnist`` installs them), ``imb`` (default 100), ``n_max`` (head class size,
default 6000: every training image of class 0), ``seed`` (long-tailed selection, default 0).

The training set is the exponential long-tailed subset of the 60,000 training images
(:func:`~softlabels.data.longtail.select_longtail`; imb=100 keeps 6000 ... 60, 14,886
images) in source order; the test set is the full balanced one (10,000). Raw inputs are
uint8 ``[B, 1, 28, 28]``; ids are ``train/<source index>`` and ``test/<source index>``.
Views are the small-image ones: zero-pad 4, random 28x28 crop, horizontal flip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from softlabels.data._base import Dataset, Split
from softlabels.data._idx import IDX_IMAGES, IDX_LABELS, read_idx
from softlabels.data._registry import register_dataset
from softlabels.data.augment import small_image_recipe
from softlabels.data.longtail import select_longtail
from softlabels.errors import SpecError, UsageError

__all__ = ["CLASS_NAMES", "DEBIAN_ROOT", "FASHION_MEAN", "FASHION_STD", "fashion_mnist_lt"]

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
# Of the 60,000 training images, pixels scaled to [0, 1].
FASHION_MEAN = (0.2860,)
FASHION_STD = (0.3530,)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise SpecError(
        f"Missing Fashion-MNIST file {str(root / name)!r} (or .gz); install the Debian package "
        f"dataset-fashion-mnist (files in {DEBIAN_ROOT}) or pass root=FOLDER (at root)"
    )


def load_fashion_mnist(root: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images uint8 [N, 28, 28], labels int64 [N]), "test": ...}``, source order."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise SpecError(
            f"Expected root to be a directory holding the Fashion-MNIST IDX files, got "
            f"{str(folder)!r} (at root); install dataset-fashion-mnist or fix the path"
        )
    out = {}
    for split, (images_name, labels_name) in _FILES.items():
        images_path, labels_path = _find(folder, images_name), _find(folder, labels_name)
        images = read_idx(images_path, IDX_IMAGES)
        labels = read_idx(labels_path, IDX_LABELS).astype(np.int64)
        if images.shape[1:] != (28, 28):
            raise UsageError(
                f"Expected 28x28 images, got {images.shape[1]}x{images.shape[2]} (in "
                f"{str(images_path)!r})"
            )
        if len(images) != len(labels):
            raise UsageError(
                f"Expected as many labels as images ({len(images)}), got {len(labels)} (in "
                f"{str(labels_path)!r})"
            )
        if len(labels) and labels.max() >= len(CLASS_NAMES):
            raise UsageError(
                f"Expected labels in [0, {len(CLASS_NAMES)}), got {int(labels.max())} (in "
                f"{str(labels_path)!r})"
            )
        out[split] = (images, labels)
    return out


@register_dataset(
    "fashion-mnist-lt", defaults={"root": DEBIAN_ROOT, "imb": 100, "n_max": 6000, "seed": 0}
)
def fashion_mnist_lt(spec: str, root: str, imb: int, n_max: int, seed: int) -> Dataset:
    """Fashion-MNIST-LT: 10 classes, n_max ... n_max/imb training images, 10,000 test images."""
    if imb < 1:
        raise SpecError(f"Expected imb >= 1, got {imb} (at imb)")
    if n_max < 1:
        raise SpecError(f"Expected n_max >= 1, got {n_max} (at n_max)")
    data = load_fashion_mnist(root)
    train_x, train_y = data["train"]
    test_x, test_y = data["test"]
    keep = select_longtail(train_y, imb, seed=seed, n_max=n_max, num_classes=len(CLASS_NAMES))
    return Dataset(
        spec=spec,
        name="fashion-mnist-lt",
        class_names=list(CLASS_NAMES),
        train=Split(
            "train",
            [f"train/{i}" for i in keep.tolist()],
            train_y[keep],
            array=np.ascontiguousarray(train_x[keep][:, None]),
        ),
        test=Split(
            "test",
            [f"test/{i}" for i in range(len(test_y))],
            test_y,
            array=np.ascontiguousarray(test_x[:, None]),
        ),
        family="image",
        recipe=small_image_recipe(FASHION_MEAN, FASHION_STD, pad=4, flip=True),
    )
