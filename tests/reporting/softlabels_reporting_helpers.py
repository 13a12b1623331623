"""Helpers of the report tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

STUDENTS = ("ce", "dive-t2", "dive-T3-p0.5-a0.9")
THIRDS = ("top1", "head", "middle", "tail", "ece")


def summaries(runs: list[Path]) -> list[dict[str, Any]]:
    return [json.loads((r / "summary.json").read_text()) for r in runs]


def entry(summary: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    return next(e for e in summary[kind] if e["name"] == name)


def edited_copy(run: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of a run folder whose summary.json went through ``edit``."""
    shutil.copytree(run, dst)
    data = json.loads((dst / "summary.json").read_text())
    edit(data)
    (dst / "summary.json").write_text(json.dumps(data))
    return dst


def one_error_line(result: Result) -> str:
    """Assert a user error: exit 2, no traceback, one ``error:`` line (the last on stderr)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]
