from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from softlabels.data import clear_dataset_cache, load_dataset
from softlabels.data._images import base_size, read_image
from softlabels.errors import SpecError, UsageError

PngWriter = Callable[[Path, int, int, int], None]


def _imagenet_tree(root: Path, png: PngWriter, labels: list[int]) -> tuple[list[str], list[str]]:
    train = [f"train/n{lab:03d}/img_{k}.png" for k, lab in enumerate(labels)]
    test = [f"val/n{lab:03d}/val_{lab}.png" for lab in sorted(set(labels))]
    for k, rel in enumerate(train + test):
        png(root / rel, 20 + k % 5, 14 + k % 3, 10 * k)
    (root / "ImageNet_LT_train.txt").write_text(
        "".join(f"{rel} {lab}\n" for rel, lab in zip(train, labels, strict=True))
    )
    test_labels = sorted(set(labels))
    (root / "lists").mkdir()
    (root / "lists" / "test.txt").write_text(
        "\n".join(f"{rel} {lab}" for rel, lab in zip(test, test_labels, strict=True)) + "\n\n"
    )
    return train, test


def test_imagenet_lt_lists(tmp_path: Path, png_writer: PngWriter) -> None:
    labels = [0, 0, 0, 1, 1, 2]
    train, test = _imagenet_tree(tmp_path, png_writer, labels)
    ds = load_dataset(f"imagenet-lt:root={tmp_path},test=lists/test.txt,size=16")
    assert ds.num_classes == 3
    assert ds.class_names == ["0", "1", "2"]
    assert ds.train.ids == train
    assert ds.test.ids == test
    assert ds.class_counts().tolist() == [3, 2, 1]
    assert not ds.train.in_memory
    base = base_size(16)
    assert base == 18
    raw = ds.train.load(np.array([4, 0]))
    assert raw.dtype == torch.uint8 and raw.shape == (2, 3, base, base)
    np.testing.assert_array_equal(raw[1].numpy(), read_image(tmp_path / train[0], base))
    assert ds.clean(raw).shape == (2, 3, 16, 16)
    assert ds.recipe["kind"] == "large_image" and ds.recipe["size"] == 16
    # classes= fixes the class count (a class without test samples is fine).
    ds4 = load_dataset(f"imagenet-lt:root={tmp_path},test=lists/test.txt,size=16,classes=3")
    assert ds4.num_classes == 3


def test_places_lt_absolute_list(tmp_path: Path, png_writer: PngWriter) -> None:
    png_writer(tmp_path / "a/x.png", 12, 12, 1)
    png_writer(tmp_path / "b/y.png", 12, 12, 2)
    lst = tmp_path / "l.txt"
    lst.write_text("a/x.png 0\nb/y.png 1\n")
    ds = load_dataset(f"places-lt:root={tmp_path},train={lst},test={lst},size=8")
    assert ds.train.ids == ["a/x.png", "b/y.png"]


def test_list_errors(tmp_path: Path, png_writer: PngWriter) -> None:
    png_writer(tmp_path / "a.png", 8, 8, 0)
    (tmp_path / "ok.txt").write_text("a.png 0\n")
    spec = f"imagenet-lt:root={tmp_path},test=ok.txt"
    with pytest.raises(SpecError, match=r"ImageNet_LT_train\.txt"):
        load_dataset(spec)
    (tmp_path / "bad.txt").write_text("a.png zero\n")
    with pytest.raises(UsageError, match=r"Expected an integer label, got 'zero' \(at .*bad.txt:1"):
        load_dataset(spec + ",train=bad.txt")
    (tmp_path / "range.txt").write_text("a.png 0\na.png 7\n")
    with pytest.raises(UsageError, match=r"Expected labels in \[0, 2\), got 7"):
        load_dataset(spec + ",train=range.txt,classes=2")
    with pytest.raises(UsageError, match=r"Class '1' \(id 1\) has no training samples"):
        load_dataset(spec + ",train=ok.txt,classes=2")


def test_missing_files_named_once(tmp_path: Path, png_writer: PngWriter) -> None:
    png_writer(tmp_path / "a.png", 8, 8, 0)
    (tmp_path / "t.txt").write_text("a.png 0\ngone1.png 0\ngone2.png 0\n")
    (tmp_path / "v.txt").write_text("a.png 0\n")
    with pytest.raises(UsageError, match=r"gone1\.png.*\(2 of 3 listed files are missing"):
        load_dataset(f"imagenet-lt:root={tmp_path},train=t.txt,test=v.txt")


@pytest.mark.parametrize("bad", ["../outside.png", "a/../../x.png", "/etc/passwd", "C:/x.png"])
def test_unsafe_ids_rejected(tmp_path: Path, png_writer: PngWriter, bad: str) -> None:
    png_writer(tmp_path / "a.png", 8, 8, 0)
    (tmp_path / "t.txt").write_text(f"a.png 0\n{bad} 0\n")
    (tmp_path / "v.txt").write_text("a.png 0\n")
    with pytest.raises(UsageError, match=r"Expected a (relative image path|path inside root)"):
        load_dataset(f"imagenet-lt:root={tmp_path},train=t.txt,test=v.txt")


def test_unreadable_image_at_load(tmp_path: Path, png_writer: PngWriter) -> None:
    png_writer(tmp_path / "a.png", 8, 8, 0)
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "t.txt").write_text("a.png 0\nbroken.png 0\n")
    ds = load_dataset(f"imagenet-lt:root={tmp_path},train=t.txt,test=t.txt,size=8")
    assert ds.train.load(np.array([0])).shape == (1, 3, 9, 9)
    with pytest.raises(UsageError, match=r"Cannot read image .*broken\.png"):
        ds.train.load(np.array([1]))


def test_read_image_resize_and_centre_crop(tmp_path: Path, png_writer: PngWriter) -> None:
    png_writer(tmp_path / "wide.png", 40, 10, 3)  # ramp along x: the crop keeps the centre
    arr = read_image(tmp_path / "wide.png", 10)
    assert arr.shape == (3, 10, 10) and arr.dtype == np.uint8
    assert np.all(arr[1] == 3)  # green channel is constant
    ramp = (np.arange(40) * 7 + 3) % 256
    # Resizing 40x10 -> 40x10 is a no-op, so the crop is columns 15..24 exactly.
    np.testing.assert_array_equal(arr[0, 0], ramp[15:25])
    tall = read_image(tmp_path / "wide.png", 20)  # upscale: shorter side 10 -> 20
    assert tall.shape == (3, 20, 20)


def _coco(
    images: list[tuple[int, str]], anns: list[tuple[int, int]], cats: list[tuple[int, str]]
) -> dict[str, object]:
    return {
        "images": [{"id": i, "file_name": f, "width": 8, "height": 8} for i, f in images],
        "annotations": [
            {"id": k, "image_id": i, "category_id": c} for k, (i, c) in enumerate(anns)
        ],
        "categories": [{"id": c, "name": n, "supercategory": "x"} for c, n in cats],
    }


def test_inat_json(tmp_path: Path, png_writer: PngWriter) -> None:
    files = [
        "train_val2018/Plantae/7/a.jpg",
        "train_val2018/Aves/3/b.jpg",
        "train_val2018/Plantae/7/c.jpg",
        "train_val2018/Fungi/11/d.jpg",
    ]
    for k, f in enumerate(files):
        png_writer(tmp_path / f, 9, 9, k)
    cats = [(11, "fungus"), (3, "bird"), (7, "plant")]
    train = _coco(
        [(100, files[0]), (101, files[1]), (102, files[2]), (103, files[3])],
        [(101, 3), (100, 7), (103, 11), (102, 7)],
        cats,
    )
    val = _coco([(5, files[3]), (6, files[1])], [(5, 11), (6, 3)], cats)
    (tmp_path / "train2018.json").write_text(json.dumps(train))
    (tmp_path / "val2018.json").write_text(json.dumps(val))
    ds = load_dataset(f"inat:root={tmp_path},size=8")
    assert ds.class_names == ["bird", "plant", "fungus"]  # sorted by category id 3, 7, 11
    assert ds.train.ids == files
    assert ds.train.labels.tolist() == [1, 0, 1, 2]
    assert ds.test.labels.tolist() == [2, 0]
    assert ds.train.load(np.arange(4)).shape == (4, 3, 9, 9)

    val_bad = _coco([(5, files[3])], [(5, 99)], cats)
    (tmp_path / "bad.json").write_text(json.dumps(val_bad))
    with pytest.raises(UsageError, match="category id 99"):
        load_dataset(f"inat:root={tmp_path},test=bad.json")
    no_ann = _coco([(5, files[3])], [], cats)
    (tmp_path / "noann.json").write_text(json.dumps(no_ann))
    with pytest.raises(UsageError, match=r"none for image id 5"):
        load_dataset(f"inat:root={tmp_path},test=noann.json")
    (tmp_path / "unsafe.json").write_text(json.dumps(_coco([(5, "../x.jpg")], [(5, 3)], cats)))
    with pytest.raises(UsageError, match=r"'\.\.' component"):
        load_dataset(f"inat:root={tmp_path},test=unsafe.json")


def test_imagefolder(tmp_path: Path, png_writer: PngWriter) -> None:
    for split, counts in (
        ("train", {"cat": 3, "ant": 2, "dog": 1}),
        ("test", {"cat": 1, "ant": 1, "dog": 1}),
    ):
        for cls, n in counts.items():
            for k in range(n):
                png_writer(tmp_path / split / cls / f"{k}.png", 10, 12, k)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    png_writer(tmp_path / "train" / "cat" / "sub" / "deep.png", 10, 10, 9)
    ds = load_dataset(f"imagefolder:root={tmp_path},size=8")
    assert ds.class_names == ["ant", "cat", "dog"]
    assert ds.class_counts().tolist() == [2, 4, 1]
    assert ds.train.ids[:3] == ["train/ant/0.png", "train/ant/1.png", "train/cat/0.png"]
    assert "train/cat/sub/deep.png" in ds.train.ids
    assert ds.test.ids == ["test/ant/0.png", "test/cat/0.png", "test/dog/0.png"]
    assert ds.train.load(np.array([0])).shape == (1, 3, 9, 9)
    (tmp_path / "test" / "eel").mkdir()
    png_writer(tmp_path / "test" / "eel" / "0.png", 8, 8, 0)
    clear_dataset_cache()  # load_dataset caches by spec; the folder changed under it
    with pytest.raises(UsageError, match="same class folders"):
        load_dataset(f"imagefolder:root={tmp_path},size=8")
    with pytest.raises(SpecError, match="nothere"):
        load_dataset(f"imagefolder:root={tmp_path},test=nothere")
