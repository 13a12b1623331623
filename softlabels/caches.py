"""Opening a cache and checking that it was built from a given dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softlabels.stores.cache import Cache

__all__ = ["check_dataset", "open_cache"]


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
