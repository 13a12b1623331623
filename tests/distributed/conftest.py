"""Fixtures of the scale-out tests: one reference cache, dumped by one process."""

from __future__ import annotations

from pathlib import Path

import pytest
from softlabels_distributed_helpers import dump_in_process


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-process dump (one thread, as torchrun runs workers); never modified."""
    out = tmp_path_factory.mktemp("dist-reference") / "ref.slc"
    dump_in_process(out)
    return out
