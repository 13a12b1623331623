"""Helpers of the calibration tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

from typer.testing import Result

# 159 training samples (40 ... 4 per class, 10 classes), 60 test samples: 5 chunks of 32 rows.
DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=6"
OTHER_DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=6,seed=1"
CHUNK = 32
BATCH = 16


def one_error_line(result: Result) -> str:
    """Assert a user error: exit 2, no traceback, one ``error:`` line (the last on stderr)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]
