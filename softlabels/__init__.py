"""softlabels: soft-label caches and offline distillation for long-tailed recognition.

Teachers run once (``dump``); many students learn from what they said (``distill``).
Heavy modules (torch, zarr) load on first use, so ``import softlabels`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Cache", "__version__", "check_dataset", "open_cache", "virtual_examples"]

if TYPE_CHECKING:
    from softlabels.analysis import virtual_examples
    from softlabels.stores.cache import Cache


def open_cache(path_or_url: str) -> Cache:
    """Open a cache read-only: a local folder or an fsspec URL (``memory://``, ``s3://`` ...).

    >>> cache = softlabels.open_cache("runs/mnist1d.slc")   # doctest: +SKIP
    >>> cache.teacher("bsce").logits                         # lazy zarr array [N, V, C]
    """
    from softlabels.stores.cache import Cache

    return Cache(path_or_url)


def check_dataset(cache: Cache, dataset: Any, split: str | None = None) -> None:
    """Raise FingerprintMismatchError unless ``cache`` was built from ``dataset``'s split."""
    from softlabels.errors import FingerprintMismatchError

    split = split or str(cache.dataset.split or "train")
    got = dataset.split(split).fingerprint()
    if got != cache.fingerprint:
        raise FingerprintMismatchError(
            f"cache {cache.url} was built for another dataset: cache fingerprint "
            f"{cache.fingerprint[:16]}… ({cache.dataset.spec}), dataset fingerprint "
            f"{got[:16]}… ({dataset.spec}, {split} split); dump a cache for this dataset"
        )


def __getattr__(name: str) -> Any:
    if name == "Cache":
        from softlabels.stores.cache import Cache

        return Cache
    if name == "virtual_examples":
        from softlabels.analysis import virtual_examples

        return virtual_examples
    raise AttributeError(f"module 'softlabels' has no attribute {name!r}")
