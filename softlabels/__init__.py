"""softlabels: soft-label caches and offline distillation for long-tailed recognition."""

__version__ = "0.1.0"
