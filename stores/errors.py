"""Every error softlabels raises on purpose.

Each class also inherits the builtin that fits, so callers can catch either. ``exit_code``
is what the CLI exits with: 2 for a problem with the user's input (bad value, wrong cache,
corrupt data), 1 for a run that failed on its own terms (a diverged loss).
"""

from __future__ import annotations

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


class SoftlabelsError(Exception):
    """Base of every expected error: the CLI prints its message on one line, no traceback."""

    exit_code: int = 2


class UsageError(SoftlabelsError, ValueError):
    """A bad value, flag, spec or combination given by the user."""


class SpecError(UsageError):
    """A dataset or model spec that cannot be parsed or resolved."""


class CacheError(SoftlabelsError):
    """Something about a cache on disk."""


class CacheNotFoundError(CacheError, FileNotFoundError):
    """No softlabels cache at the given location."""


class CacheExistsError(CacheError, FileExistsError):
    """A cache with different settings already exists at the location."""


class CacheLockedError(CacheError, RuntimeError):
    """Another writer holds the cache lock."""


class ChecksumMismatchError(CacheError, ValueError):
    """A chunk's bytes do not match the manifest."""


class IncompleteCacheError(CacheError):
    """A cache (or one teacher of it) has chunks that were never committed."""


class FingerprintMismatchError(UsageError):
    """A cache meets a dataset it was not built from."""


class NonFiniteError(SoftlabelsError, FloatingPointError):
    """NaN or Inf where finite numbers are required (teacher outputs, losses)."""


class DivergedError(NonFiniteError):
    """A training loss became NaN/Inf; the run stopped (its checkpoints before stay)."""

    exit_code = 1


class StorageError(CacheError, OSError):
    """Writing to the cache's storage failed (disk full, read-only, I/O error).

    Everything committed before stays; rerunning the same command resumes.
    """

    exit_code = 1


class PeerError(SoftlabelsError, RuntimeError):
    """Another process of a distributed job failed or stopped while this one waited for it."""

    exit_code = 1
