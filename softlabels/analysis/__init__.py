"""Analysis of cached teachers: virtual-example distributions and the tune-tau rule (DiVE).

``virtual_examples`` streams a cache once and returns V(T, p) for a whole grid, its
flatness figures and the rule of thumb's choice; ``store_choice`` writes that choice into
the cache for ``distill --tau auto``; ``plot_virtual_examples`` draws the three figures.
"""

from softlabels.analysis.plots import plot_virtual_examples
from softlabels.analysis.virtual import (
    DEFAULT_POWERS,
    DEFAULT_TAUS,
    TARGET_RATIO,
    Choice,
    GridPoint,
    VirtualExamples,
    check_writable,
    choose,
    flatness,
    parse_powers,
    parse_taus,
    store_choice,
    virtual_examples,
)

__all__ = [
    "DEFAULT_POWERS",
    "DEFAULT_TAUS",
    "TARGET_RATIO",
    "Choice",
    "GridPoint",
    "VirtualExamples",
    "check_writable",
    "choose",
    "flatness",
    "parse_powers",
    "parse_taus",
    "plot_virtual_examples",
    "store_choice",
    "virtual_examples",
]
