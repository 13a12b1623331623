"""Helpers of the dump tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import Result

from softlabels.teachers import DumpConfig, dump, parse_teacher

# 159 training samples (40 ... 4 per class), 100 test samples: 5 chunks of 32 rows.
DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=10"
CHUNK = 32
BATCH = 16
FIXTURE_NETS = "softlabels_teachers_fixture_nets"
HERE = Path(__file__).resolve().parent
LOCK = ".softlabels.lock"


def make_config(*teachers: str, **kw: Any) -> DumpConfig:
    kw.setdefault("chunk_size", CHUNK)
    kw.setdefault("batch_size", BATCH)
    return DumpConfig(
        dataset=kw.pop("dataset", DATASET),
        teachers=tuple(parse_teacher(t) for t in (teachers or ("a=cnn1d",))),
        **kw,
    )


def dump_to(out: Path | str, *teachers: str, **kw: Any) -> Any:
    """In-process dump on the CPU with the tiny defaults."""
    return dump(make_config(*teachers, **kw), str(out), device="cpu")


def cache_files(root: Path) -> dict[str, bytes]:
    """Every file of a cache folder by relative path, the lock file excluded."""
    out: dict[str, bytes] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel != LOCK:
                out[rel] = path.read_bytes()
    return out


def flip_a_byte(path: Path) -> None:
    """Damage a file in place: its middle byte inverted (same size, another checksum)."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def array_chunk_files(root: Path) -> dict[str, bytes]:
    """The chunk files of every array (``.../c/...``), by relative path."""
    return {k: v for k, v in cache_files(root).items() if "/c/" in f"/{k}"}


def one_error_line(result: Result) -> str:
    """Assert a user error: exit 2, no traceback, one ``error:`` line (the last on stderr)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def finite(a: np.ndarray) -> bool:
    return bool(np.isfinite(np.asarray(a, dtype=np.float64)).all())
