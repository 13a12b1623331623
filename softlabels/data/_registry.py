"""The dataset registry: ``register_dataset``, ``load_dataset``, ``list_datasets``.

A dataset is registered as a builder function with the defaults of its options::

    @register_dataset("toy-lt", defaults={"imb": 10, "seed": 0, "root": REQUIRED})
    def toy(spec: str, imb: int, seed: int, root: str) -> Dataset:
        ...

``load_dataset("toy-lt:root=data")`` parses the spec, calls the builder with the canonical
spec and every option as keyword arguments, checks the result (labels in range, no class
without training samples, unique ids) and caches it in-process under the canonical spec.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from softlabels.data._base import Dataset, Split
from softlabels.data._spec import REQUIRED, DatasetSpec, format_value, parse_spec
from softlabels.data.pyspec import build_python_dataset
from softlabels.errors import UsageError

__all__ = [
    "check_dataset",
    "clear_dataset_cache",
    "dataset_defaults",
    "list_datasets",
    "load_dataset",
    "parse_dataset_spec",
    "register_dataset",
    "registered_defaults",
]

Builder = Callable[..., Dataset]
F = TypeVar("F", bound=Builder)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# Modules holding the built-in datasets; imported on first use of the registry.
_BUILTIN_MODULES = (
    "softlabels.data.mnist1d_lt",
    "softlabels.data.mnist1d100_lt",
    "softlabels.data.digits_lt",
    "softlabels.data.cifar",
    "softlabels.data.fashion_mnist",
    "softlabels.data.imagelist",
    "softlabels.data.inat",
    "softlabels.data.imagefolder",
)

_builders: dict[str, Builder] = {}
_defaults: dict[str, dict[str, Any]] = {}
_cache: dict[str, Dataset] = {}
_lock = threading.RLock()
_import_lock = threading.RLock()  # held only while importing the built-in modules
_builtins_state = {"loaded": False}


def _ensure_builtins() -> None:
    if _builtins_state["loaded"]:
        return
    with _import_lock:
        if _builtins_state["loaded"]:
            return
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_state["loaded"] = True


def register_dataset(name: str, defaults: Mapping[str, Any] | None = None) -> Callable[[F], F]:
    """Decorator registering ``builder(spec, **options) -> Dataset`` under ``name``.

    ``defaults`` maps every option to its default (bool, int, float or str), or to
    :data:`REQUIRED` for an option without one; the default's type is the option's type.
    Registering a name twice raises :class:`UsageError`.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or name == "py":
        raise UsageError(
            f"Expected a dataset name of lowercase letters, digits, '-', '_' or '.', got {name!r}"
        )
    opts = dict(defaults or {})
    for key, value in opts.items():
        if key == "spec" or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise UsageError(f"Expected an option name like 'imb', got {key!r} (at {name})")
        if value is not REQUIRED:
            if not isinstance(value, bool | int | float | str):
                raise UsageError(
                    f"Expected a bool, int, float, str or REQUIRED default, got "
                    f"{type(value).__name__} (at {name}:{key})"
                )
            if "," in format_value(value):
                raise UsageError(f"Expected a default without ',', got {value!r} (at {name}:{key})")

    def decorate(builder: F) -> F:
        if not builder.__module__.startswith("softlabels.data."):
            _ensure_builtins()  # so a clash with a built-in name is reported now
        with _lock:
            if name in _builders:
                raise UsageError(f"Dataset {name!r} is already registered; choose another name")
            _builders[name] = builder
            _defaults[name] = opts
        return builder

    return decorate


def registered_defaults() -> dict[str, dict[str, Any]]:
    """Every registered name with the defaults of its options (a copy)."""
    _ensure_builtins()
    with _lock:
        return {name: dict(d) for name, d in _defaults.items()}


def dataset_defaults(name: str) -> dict[str, Any]:
    """The options of one registered dataset with their defaults (``REQUIRED`` if none)."""
    table = registered_defaults()
    if name not in table:
        raise UsageError(f"Unknown dataset {name!r}; expected one of: {', '.join(sorted(table))}")
    return table[name]


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted (``py:MODULE:CALLABLE`` is always accepted)."""
    return sorted(registered_defaults())


def clear_dataset_cache() -> None:
    """Forget the datasets ``load_dataset`` has built in this process."""
    with _lock:
        _cache.clear()


def parse_dataset_spec(
    spec: str, registry: Mapping[str, Mapping[str, Any]] | None = None
) -> DatasetSpec:
    """Parse ``spec`` against the registered datasets (or ``registry``: name -> defaults).

    Raises :class:`~softlabels.errors.SpecError` for an unknown name or key, a malformed
    option, a value of the wrong type or a missing required option.
    """
    return parse_spec(spec, registered_defaults() if registry is None else registry)


def load_dataset(spec: str | DatasetSpec) -> Dataset:
    """Build (or return the cached) dataset for ``spec``; see :func:`parse_dataset_spec`."""
    _ensure_builtins()
    parsed = spec if isinstance(spec, DatasetSpec) else parse_dataset_spec(spec)
    canonical = parsed.canonical
    with _lock:
        cached = _cache.get(canonical)
    if cached is not None:
        return cached
    if parsed.is_python:
        dataset = build_python_dataset(canonical, parsed)
    else:
        with _lock:
            builder = _builders[parsed.name]
        dataset = builder(canonical, **parsed.options)
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"Dataset builder for {parsed.name!r} returned {type(dataset).__name__}, "
                "expected Dataset"
            )
        dataset.spec = canonical
    check_dataset(dataset)
    with _lock:
        return _cache.setdefault(canonical, dataset)


def _check_split(split: Split, num_classes: int, class_names: list[str]) -> None:
    labels = split.labels
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise TypeError(f"Expected int64 [N] labels, got {labels.dtype} {labels.shape}")
    if len(labels):
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if len(bad):
            i = int(bad[0])
            raise UsageError(
                f"Expected labels in [0, {num_classes}), got {int(labels[i])} (at "
                f"{split.name} sample {split.ids[i]!r}; {len(bad)} such samples); fix the "
                "labels or the class count"
            )
    if len(set(split.ids)) != len(split.ids):
        seen: set[str] = set()
        for sid in split.ids:
            if sid in seen:
                raise UsageError(
                    f"Expected unique sample ids, got {sid!r} twice (in the {split.name} split)"
                )
            seen.add(sid)


def check_dataset(dataset: Dataset) -> None:
    """Check labels are in range, ids unique and every class has training samples."""
    c = dataset.num_classes
    if c < 1:
        raise UsageError(f"Expected at least one class, got 0 (at dataset {dataset.name!r})")
    for split in (dataset.train, dataset.test):
        _check_split(split, c, dataset.class_names)
    counts = np.bincount(dataset.train.labels, minlength=c)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        k = int(empty[0])
        more = f" ({len(empty)} classes in all)" if len(empty) > 1 else ""
        raise UsageError(
            f"Class {dataset.class_names[k]!r} (id {k}) has no training samples{more} "
            f"(at dataset {dataset.spec!r}); lower the imbalance or fix the labels"
        )
