"""Opening a cache and checking that it was built from a given dataset."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softlabels.stores.cache import Cache

__all__ = ["check_dataset", "check_recipe", "open_cache", "storage_options"]


def open_cache(path_or_url: str, storage_options: Mapping[str, Any] | None = None) -> Cache:
    """Open a cache read-only: a local folder or an fsspec URL (``memory://``, ``s3://`` ...).

    ``storage_options`` go to the fsspec filesystem, over fsspec's own configuration
    (``FSSPEC_S3_ENDPOINT_URL`` ...).

    >>> cache = softlabels.open_cache("runs/mnist1d.slc")   # doctest: +SKIP
    >>> cache.teacher("bsce").logits                         # lazy zarr array [N, V, C]
    """
    from softlabels.stores.cache import Cache

    return Cache(path_or_url, storage_options)


@contextmanager
def storage_options(url: str, options: Mapping[str, Any] | None) -> Iterator[None]:
    """Every cache of ``url``'s protocol opened in the block (by dump, distill, calibrate ...)
    gets these fsspec options, e.g. ``{"client_kwargs": {"endpoint_url": ...}}`` for s3://.

    >>> with softlabels.storage_options("s3://", {"anon": False}):   # doctest: +SKIP
    ...     softlabels.open_cache("s3://bucket/c.slc").verify()
    """
    from softlabels.stores._fs import storage_options as given

    with given(url, options):
        yield


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


def check_recipe(cache: Cache, dataset: Any) -> None:
    """Raise UsageError unless ``dataset`` augments with the recipe ``cache``'s views were
    made with: replayed views are the teacher's inputs only under that recipe."""
    import json

    from softlabels.errors import UsageError

    cached = cache.views.recipe
    here = json.loads(json.dumps(dataset.recipe))
    if cached is not None and _canonical(cached) != _canonical(here):
        raise UsageError(
            f"cache {cache.url} holds views made with the augmentation recipe {cached}, but "
            f"dataset {dataset.spec} augments with {here}; dump the cache again for this recipe, "
            'or train with views = "own"'
        )


def _canonical(recipe: Any) -> str:
    import json

    return json.dumps(recipe, sort_keys=True)
