"""The options every command that opens a cache shares: how to reach its storage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

__all__ = ["LeaseOpt", "StorageOpt", "cache_storage"]

StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage-options",
        metavar="JSON",
        help="fsspec options for the cache's filesystem, a JSON object, e.g. "
        '\'{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}\' for an '
        "S3-compatible store; on top of fsspec's own configuration (FSSPEC_S3_ENDPOINT_URL ...).",
    ),
]
LeaseOpt = Annotated[
    float | None,
    typer.Option(
        "--lease-seconds",
        help="Object stores: the lease of the cache lock, renewed every quarter of it while "
        "this command runs; another writer takes over a lease that expired "
        "(default: $SOFTLABELS_LEASE_SECONDS, else 120).",
    ),
]


@contextmanager
def cache_storage(
    url: str, storage_options: str | None, lease_seconds: float | None = None
) -> Iterator[None]:
    """Open ``url``'s filesystem with ``--storage-options`` (and lock it with
    ``--lease-seconds``) while the block runs; a malformed value is a one-line UsageError."""
    from softlabels.caches import storage_options as given_options
    from softlabels.stores._fs import parse_storage_options
    from softlabels.stores.lock import using_lease

    options = parse_storage_options(storage_options)
    with given_options(url, options), using_lease(lease_seconds):
        yield
