"""One distill run as a report reads it: its ``summary.json``, checked entry by entry."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softlabels.errors import UsageError
from softlabels.metrics import ABSOLUTE_GROUPS, THIRDS

__all__ = ["Entry", "RunSummary", "group_names", "load_run"]

DEFINITIONS = {"absolute": ABSOLUTE_GROUPS, "thirds": THIRDS}


def group_names(definition: str) -> tuple[str, ...]:
    """The three shot-group keys of a group definition (``absolute`` or ``thirds``)."""
    return DEFINITIONS[definition]


@dataclass(frozen=True)
class Entry:
    """A student or a teacher of one run: its name, status and final test metrics."""

    kind: str  # "student" or "teacher"
    name: str
    status: str  # "ok", "diverged", "model not available", ...
    method: str | None = None  # students only
    teacher: str | None = None  # a student's teacher (as distill shows it)
    metrics: dict[str, float | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RunSummary:
    """What a report needs of one run. ``path`` is the run folder (``None`` when built from
    a dict in memory: such a run has no per-class table to plot)."""

    source: str  # how messages name the run: its summary file, or what the caller said
    groups_definition: str
    entries: tuple[Entry, ...]
    path: Path | None = None

    @property
    def name(self) -> str:
        """The run folder, or the source of a run built in memory."""
        return str(self.path) if self.path is not None else self.source

    @classmethod
    def from_dict(
        cls, data: Any, source: str = "<summary>", path: Path | None = None
    ) -> RunSummary:
        """Check a summary (the dict ``softlabels distill`` writes, or one shaped like it)."""
        if not isinstance(data, Mapping):
            raise UsageError(f"Expected a JSON object in {source}, got {type(data).__name__}")
        definition = data.get("groups_definition")
        if definition not in DEFINITIONS:
            raise UsageError(
                f"Expected groups_definition 'absolute' or 'thirds' in {source}, got {definition!r}"
            )
        keys = ("top1", *group_names(definition), "ece")
        entries = [
            _entry(raw, kind[:-1], f"{kind}[{i}]", keys, source)
            for kind in ("teachers", "students")
            for i, raw in _items(data, kind, source)
        ]
        return cls(source=source, groups_definition=definition, entries=tuple(entries), path=path)


def load_run(run_dir: str | Path) -> RunSummary:
    """Read ``RUN_DIR/summary.json``; a missing or malformed file is one ``UsageError``."""
    path = Path(run_dir)
    summary = path / "summary.json"
    if not path.is_dir():
        raise UsageError(
            f"Expected a distill run folder holding summary.json, got {path} (no such folder)"
        )
    try:
        text = summary.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"Expected {summary} (written by softlabels distill), got no such file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"Expected a readable {summary}, got {type(exc).__name__}: {exc}"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"Expected JSON in {summary}, got {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return RunSummary.from_dict(data, source=str(summary), path=path)


def _items(data: Mapping[str, Any], key: str, source: str) -> list[tuple[int, Any]]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise UsageError(f"Expected {key} a list in {source}, got {type(items).__name__}")
    return list(enumerate(items))


def _entry(raw: Any, kind: str, where: str, keys: tuple[str, ...], source: str) -> Entry:
    if not isinstance(raw, Mapping):
        raise UsageError(f"Expected {where} an object in {source}, got {type(raw).__name__}")
    text = {k: raw.get(k) for k in ("name", "status", "method", "teacher")}
    required = ("name", "status", "method") if kind == "student" else ("name", "status")
    for k, v in text.items():
        if (k in required or v is not None) and (not isinstance(v, str) or not v):
            raise UsageError(f"Expected {where}.{k} a non-empty string in {source}, got {v!r}")
    metrics = {k: _number(raw.get(k), f"{where}.{k}", source) for k in keys}
    return Entry(kind=kind, metrics=metrics, **text)


def _number(value: Any, where: str, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"Expected {where} a number or null in {source}, got {value!r}")
    return float(value) if math.isfinite(value) else None  # NaN (a broken run): no value
