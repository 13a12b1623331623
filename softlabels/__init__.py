"""softlabels: soft-label caches and offline distillation for long-tailed recognition.

Teachers run once (``dump``); many students learn from what they said (``distill``).
Heavy modules (torch, zarr) load on first use, so ``import softlabels`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Cache",
    "CachedBatchSampler",
    "CachedDataset",
    "Report",
    "__version__",
    "check_dataset",
    "open_cache",
    "report",
    "storage_options",
    "virtual_examples",
]

from softlabels.caches import check_dataset, open_cache, storage_options

if TYPE_CHECKING:
    from softlabels.analysis import virtual_examples
    from softlabels.cached_dataset import CachedBatchSampler, CachedDataset
    from softlabels.reports import Report, report
    from softlabels.stores.cache import Cache


def __getattr__(name: str) -> Any:
    if name == "Cache":
        from softlabels.stores.cache import Cache

        return Cache
    if name in ("CachedDataset", "CachedBatchSampler"):
        from softlabels import cached_dataset

        return getattr(cached_dataset, name)
    if name == "virtual_examples":
        from softlabels.analysis import virtual_examples

        return virtual_examples
    if name in ("Report", "report"):
        from softlabels import reports

        return getattr(reports, name)
    raise AttributeError(f"module 'softlabels' has no attribute {name!r}")
