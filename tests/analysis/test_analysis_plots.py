"""The three tune-tau figures are valid PNG files; plotting leaves matplotlib's state alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from softlabels_analysis_helpers import PNG

from softlabels.analysis import plot_virtual_examples, virtual_examples
from softlabels.analysis.plots import PLOT_FILES


def _check(paths: list[str], folder: Path) -> None:
    assert [Path(p).name for p in paths] == list(PLOT_FILES)
    for p in paths:
        data = Path(p).read_bytes()
        assert data.startswith(PNG) and data[12:16] == b"IHDR" and len(data) > 2000
    assert sorted(f.name for f in folder.iterdir()) == sorted(PLOT_FILES)  # no temp files left


def test_plots_absolute_groups_ensemble(lt_reference: Path, tmp_path: Path) -> None:
    ve = virtual_examples(str(lt_reference), ["a", "b"], taus=(1, 2, 3, 5), powers=(1, 0.5))
    paths = plot_virtual_examples(ve, tmp_path / "new" / "dir")
    _check(paths, tmp_path / "new" / "dir")


def test_plots_thirds_and_single_temperature(small: dict[str, Any], tmp_path: Path) -> None:
    ve = virtual_examples(small["url"], taus=(2,), powers=(1,))
    assert ve.groups == "thirds"
    _check(plot_virtual_examples(ve, tmp_path / "plots"), tmp_path / "plots")


def test_no_pyplot_no_backend_switch(small: dict[str, Any], tmp_path: Path) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot_virtual_examples(virtual_examples(small["url"], taus=(1, 3)), tmp_path)
    assert matplotlib.get_backend() == backend
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
