"""Public error classes (defined in :mod:`softlabels.stores.errors`, which imports nothing
of the library, so the dependency points one way)."""

from softlabels.stores.errors import (
    CacheError,
    CacheExistsError,
    CacheLockedError,
    CacheNotFoundError,
    ChecksumMismatchError,
    DivergedError,
    FingerprintMismatchError,
    IncompleteCacheError,
    NonFiniteError,
    PeerError,
    SoftlabelsError,
    SpecError,
    StorageError,
    UsageError,
)

__all__ = [
    "CacheError",
    "CacheExistsError",
    "CacheLockedError",
    "CacheNotFoundError",
    "ChecksumMismatchError",
    "DivergedError",
    "FingerprintMismatchError",
    "IncompleteCacheError",
    "NonFiniteError",
    "PeerError",
    "SoftlabelsError",
    "SpecError",
    "StorageError",
    "UsageError",
]
