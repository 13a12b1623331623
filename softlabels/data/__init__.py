"""Datasets for softlabels: specs, the registry, long-tailed selection and augmentation.

>>> ds = load_dataset("mnist1d-lt:imb=100")      # doctest: +SKIP
>>> raw = ds.train.load(np.arange(8))            # doctest: +SKIP
>>> x = ds.augment(raw, view_seeds(0, np.arange(8), 1)[:, 0])  # doctest: +SKIP

Built-in datasets: ``mnist1d-lt``, ``mnist1d100-lt``, ``digits-lt``, ``cifar10-lt``, ``cifar100-lt``,
``fashion-mnist-lt``, ``imagenet-lt``, ``places-lt``, ``inat``, ``imagefolder``; any
``py:MODULE:CALLABLE``.
"""

from __future__ import annotations

from softlabels.data._base import Dataset, Split, fingerprint
from softlabels.data._registry import (
    clear_dataset_cache,
    dataset_defaults,
    list_datasets,
    load_dataset,
    parse_dataset_spec,
    register_dataset,
)
from softlabels.data._spec import REQUIRED, DatasetSpec
from softlabels.data.augment import augment, clean, view_seeds
from softlabels.data.longtail import longtail_counts, select_longtail

__all__ = [
    "REQUIRED",
    "Dataset",
    "DatasetSpec",
    "Split",
    "augment",
    "clean",
    "clear_dataset_cache",
    "dataset_defaults",
    "fingerprint",
    "list_datasets",
    "load_dataset",
    "longtail_counts",
    "parse_dataset_spec",
    "register_dataset",
    "select_longtail",
    "view_seeds",
]
