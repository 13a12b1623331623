"""The one loss registry: every method the engine can train with, as frozen data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from softlabels.errors import UsageError

__all__ = ["LossInfo", "get_loss", "is_loss", "list_losses", "register_loss"]


@dataclass(frozen=True)
class LossInfo:
    """A registered method: its pure function and what it needs."""

    name: str
    fn: Callable[..., Any]
    needs_teacher: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


_LOSSES: dict[str, LossInfo] = {}


def register_loss(
    name: str,
    *,
    needs_teacher: bool = False,
    defaults: dict[str, Any] | None = None,
    summary: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        _LOSSES[name] = LossInfo(
            name,
            fn,
            needs_teacher,
            dict(defaults or {}),
            summary or (fn.__doc__ or "").split("\n")[0],
        )
        return fn

    return deco


def list_losses() -> list[str]:
    return sorted(_LOSSES)


def is_loss(name: str) -> bool:
    return name in _LOSSES


def get_loss(name: str) -> LossInfo:
    if name not in _LOSSES:
        raise UsageError(f"Expected a method among {', '.join(list_losses())}, got {name!r}")
    return _LOSSES[name]
