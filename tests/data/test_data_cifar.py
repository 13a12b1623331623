from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from softlabels.data import clear_dataset_cache, load_dataset, longtail_counts
from softlabels.errors import SpecError, UsageError

Writer = Callable[[Path, int], tuple[np.ndarray, np.ndarray]]


@pytest.mark.parametrize("pointing_at_folder", [False, True])
def test_cifar10_lt_from_real_layout(
    tmp_path: Path, cifar_writers: dict[str, Writer], pointing_at_folder: bool
) -> None:
    x, y = cifar_writers["cifar10"](tmp_path, 20)
    root = tmp_path / "cifar-10-batches-py" if pointing_at_folder else tmp_path
    ds = load_dataset(f"cifar10-lt:root={root},imb=10")
    assert ds.spec == f"cifar10-lt:imb=10,root={root},seed=0"
    assert ds.num_classes == 10
    assert ds.class_names[0] == "airplane" and ds.class_names[9] == "truck"
    assert ds.family == "image"
    assert ds.class_counts().tolist() == longtail_counts(20, 10, 10)
    assert ds.class_counts("test").tolist() == [3] * 10
    assert ds.train.labels.dtype == np.int64
    # Deterministic order = source order; ids name the source rows.
    src = [int(i.split("/")[1]) for i in ds.train.ids]
    assert src == sorted(src)
    assert all(i.startswith("train/") for i in ds.train.ids)
    np.testing.assert_array_equal(ds.train.labels, y[src])
    raw = ds.train.load(np.array([0, 3]))
    assert raw.dtype == torch.uint8 and raw.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(raw.numpy(), x[[src[0], src[3]]].reshape(2, 3, 32, 32))
    assert ds.test.ids[:2] == ["test/0", "test/1"]
    assert ds.input_shape == (3, 32, 32)


def test_cifar100_lt_counts_and_seed(tmp_path: Path, cifar_writers: dict[str, Writer]) -> None:
    cifar_writers["cifar100"](tmp_path, 20)
    ds = load_dataset(f"cifar100-lt:root={tmp_path},imb=10")
    assert ds.num_classes == 100
    assert ds.class_names[5] == "class005"
    assert ds.class_counts().tolist() == longtail_counts(20, 100, 10)
    assert ds.class_counts("test").tolist() == [2] * 100
    other = load_dataset(f"cifar100-lt:root={tmp_path},imb=10,seed=1")
    assert other.class_counts().tolist() == ds.class_counts().tolist()
    assert other.train.ids != ds.train.ids
    assert other.train.fingerprint() != ds.train.fingerprint()
    clear_dataset_cache()
    again = load_dataset(f"cifar100-lt:imb=10,root={tmp_path}")
    assert again is not ds
    assert again.train.fingerprint() == ds.train.fingerprint()


def test_cifar_missing_root_and_files(tmp_path: Path, cifar_writers: dict[str, Writer]) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SpecError, match="nowhere"):
        load_dataset(f"cifar10-lt:root={missing}")
    with pytest.raises(SpecError, match=r"batches.meta"):
        load_dataset(f"cifar10-lt:root={tmp_path}")
    cifar_writers["cifar10"](tmp_path, 4)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(SpecError, match=r"data_batch_3"):
        load_dataset(f"cifar10-lt:root={tmp_path}")


def test_cifar_refuses_code_in_pickles(tmp_path: Path, cifar_writers: dict[str, Writer]) -> None:
    cifar_writers["cifar10"](tmp_path, 4)

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [Evil()]}, protocol=2))
    with pytest.raises(UsageError, match="not allowed"):
        load_dataset(f"cifar10-lt:root={tmp_path}")


def test_cifar_zero_sample_class(tmp_path: Path, cifar_writers: dict[str, Writer]) -> None:
    cifar_writers["cifar10"](tmp_path, 4)
    # 4 per class with imb=10: classes 6..9 get int(4 * 10 ** (-i / 9)) = 0 images.
    with pytest.raises(UsageError, match=r"Class 'frog' \(id 6\) has no training samples \(4 "):
        load_dataset(f"cifar10-lt:root={tmp_path},imb=10")
