"""Helpers of the CLI tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import Result

# 159 training samples (40 ... 4 per class): 5 chunks of 32 rows.
DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=10"
OTHER_DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=10,seed=1"  # another long-tailed pick
CHUNK = 32
BATCH = 16
LOCK = ".softlabels.lock"


def dump_args(out: Path | str, *extra: object, teacher: str = "a=cnn1d") -> list[object]:
    return [
        "dump", "--dataset", DATASET, "--teacher", teacher, "--out", out,
        "--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu", *extra,
    ]  # fmt: skip


def one_error_line(result: Result) -> str:
    """Assert a user error: exit 2, no traceback, one ``error:`` line (the last on stderr)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` (hidden ones too) with its bytes and mtime."""
    out: dict[str, tuple[bytes, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mtime_ns)
    return out
