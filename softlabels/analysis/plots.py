"""The three tune-tau figures (PNG), drawn from a :class:`VirtualExamples` result.

1. ``tune_tau_per_class.png``: V per class, classes sorted head to tail, one line per
   effective temperature, the input histogram as reference (DiVE, Figure 5).
2. ``tune_tau_groups.png``: mean per class in each group for the input and the choice
   (DiVE, Figure 1).
3. ``tune_tau_ratio.png``: tail/head ratio against T, one line per power p.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot: no
backend is selected or switched, so calling this from a notebook or a GUI program leaves
the caller's matplotlib state alone (``savefig`` picks the Agg canvas for PNG by itself).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from softlabels.stores.atomic import atomic_file

if TYPE_CHECKING:
    from softlabels.analysis.virtual import VirtualExamples

__all__ = ["PLOT_FILES", "plot_virtual_examples"]

PLOT_FILES = ("tune_tau_per_class.png", "tune_tau_groups.png", "tune_tau_ratio.png")
_DPI = 110


def plot_virtual_examples(result: VirtualExamples, out_dir: str | os.PathLike[str]) -> list[str]:
    """Write the three PNG figures into ``out_dir`` (created if needed); return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(os.fspath(out_dir), name) for name in PLOT_FILES]
    for path, draw in zip(paths, (_per_class, _groups, _ratio), strict=True):
        fig = _figure()
        draw(fig, result)
        _save(fig, path)
    return paths


def _figure() -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 4.8), dpi=_DPI, layout="constrained")


def _save(fig: Any, path: str) -> None:
    """Temp file then rename: a crash never leaves half a PNG under the final name."""
    with atomic_file(path) as f:
        fig.savefig(f, format="png")


def _title(result: VirtualExamples, what: str) -> str:
    return f"{what} — teacher {result.teacher}, N={result.num_samples}, C={result.num_classes}"


def _per_class(fig: Any, r: VirtualExamples) -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    ax = fig.add_subplot()
    order = r.class_order
    x = np.arange(1, len(order) + 1)
    by_eff = {g.tau_eff: g for g in r.grid}
    effs = sorted(by_eff)
    series = [np.asarray(by_eff[t].per_class, dtype=np.float64)[order] for t in effs]
    ref = r.input_counts[order].astype(np.float64)
    positive = np.concatenate([s[s > 0] for s in [*series, ref]])
    floor = positive.min() / 2 if len(positive) else 1.0
    log = len(positive) > 0 and positive.max() / positive.min() > 20
    norm = Normalize(vmin=min(effs), vmax=max(effs) if max(effs) > min(effs) else min(effs) + 1)
    cmap = colormaps["viridis"]
    chosen = r.choice.tau_eff
    for t, s in zip(effs, series, strict=True):
        if t == chosen:
            continue
        ax.plot(x, np.maximum(s, floor) if log else s, color=cmap(norm(t)), lw=0.9, alpha=0.85)
    if chosen in by_eff:
        s = series[effs.index(chosen)]
        ax.plot(
            x,
            np.maximum(s, floor) if log else s,
            color="tab:red",
            lw=2.2,
            label=f"chosen T/p = {chosen:g}",
        )
    ax.plot(
        x,
        np.maximum(ref, floor) if log else ref,
        color="black",
        lw=2.0,
        ls="--",
        label="input (hard labels)",
    )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("class rank, head to tail (by training count)")
    ax.set_ylabel("virtual examples V_c")
    ax.set_xlim(1, max(2, len(order)))
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="effective temperature T/p")
    ax.set_title(_title(r, "virtual examples per class"), fontsize=9)


def _groups(fig: Any, r: VirtualExamples) -> None:
    ax = fig.add_subplot()
    names = list(r.group_names)
    inp = [r.input_stats["group_means"].get(g) for g in names]
    point = r.chosen[0] if r.chosen else None
    ch = [point.group_means.get(g) if point else None for g in names]
    x = np.arange(len(names))
    width = 0.38
    label = f"chosen: T={r.choice.tau:g}, p={r.choice.power:g} (T/p={r.choice.tau_eff:g})"
    for off, vals, lab, color in (
        (-width / 2, inp, "input (hard labels)", "0.55"),
        (width / 2, ch, label, "tab:red"),
    ):
        heights = [v if v is not None else 0.0 for v in vals]
        bars = ax.bar(x + off, heights, width, label=lab, color=color)
        for b, v in zip(bars, vals, strict=True):
            ax.annotate(
                "empty" if v is None else f"{v:.3g}",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    sizes = {g: int((r.class_groups == g).sum()) for g in names}
    ax.set_xticks(x, [f"{g}\n({sizes[g]} classes)" for g in names])
    ax.set_ylabel("mean examples per class")
    ax.legend(fontsize=8)
    ax.set_title(_title(r, f"groups ({r.groups})"), fontsize=9)


def _ratio(fig: Any, r: VirtualExamples) -> None:
    ax = fig.add_subplot()
    powers = sorted({g.power for g in r.grid}, reverse=True)
    for p in powers:
        pts = sorted((g for g in r.grid if g.power == p), key=lambda g: g.tau)
        ax.plot(
            [g.tau for g in pts],
            [g.ratio_tail_head for g in pts],
            marker="o",
            ms=3,
            lw=1.4,
            label=f"p = {p:g}",
        )
    chosen = r.chosen
    if chosen:
        ax.scatter(
            [g.tau for g in chosen],
            [g.ratio_tail_head for g in chosen],
            marker="*",
            s=160,
            color="tab:red",
            zorder=5,
            label=f"chosen T/p = {chosen[0].tau_eff:g}",
        )
    ax.axhline(r.target, color="black", lw=0.8, ls="--", label=f"target {r.target:g}")
    ax.set_xlabel("temperature T")
    ax.set_ylabel(f"tail/head ratio of V ({r.tail} / {r.head})")
    ax.legend(fontsize=8)
    ax.set_title(_title(r, "tail/head ratio"), fontsize=9)
