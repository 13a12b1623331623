"""What every built-in architecture shares: its common arguments and its heads.

An architecture is a :class:`ClassifierNet`: a body that maps an input to a feature vector
(``features(x) -> [B, D]``), a classifier ``fc`` on that vector (``nn.Linear`` or
:class:`~softlabels.models.cosine.CosineClassifier`) and, for SSD teachers, an optional
4-way rotation head ``ssl_head`` on the same vector. ``forward(x) = fc(features(x))``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from softlabels.errors import UsageError
from softlabels.models.cosine import CosineClassifier

__all__ = ["CLASSIFIERS", "SSL_HEADS", "ClassifierNet", "ModelArgs"]

CLASSIFIERS = ("linear", "cosine")
SSL_HEADS = ("rotation",)


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"Expected an integer {name} >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class ModelArgs:
    """The arguments every architecture takes, checked when built.

    ``num_classes`` and ``in_channels`` come from the data; ``classifier``, ``cosine_scale``
    and ``ssl_head`` from the method (CBD uses a cosine classifier, SSD a rotation head).
    """

    num_classes: int
    in_channels: int
    classifier: str = "linear"
    cosine_scale: float = 20.0
    ssl_head: str | None = None

    def __post_init__(self) -> None:
        _check_int("num_classes", self.num_classes, 1)
        _check_int("in_channels", self.in_channels, 1)
        if self.classifier not in CLASSIFIERS:
            raise UsageError(f"Expected classifier 'linear' or 'cosine', got {self.classifier!r}")
        s = self.cosine_scale
        if not isinstance(s, int | float) or isinstance(s, bool) or not math.isfinite(s) or s <= 0:
            raise UsageError(f"Expected a finite cosine_scale > 0, got {s!r}")
        object.__setattr__(self, "cosine_scale", float(s))
        if self.ssl_head is not None and self.ssl_head not in SSL_HEADS:
            raise UsageError(f"Expected ssl_head None or 'rotation', got {self.ssl_head!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ClassifierNet(nn.Module):
    """Base of the built-in architectures: ``forward(x) = fc(features(x))``.

    Subclasses build their body, call ``_add_heads()``, and implement ``features`` (decorated
    with ``@torch.jit.export`` so it survives ``torch.jit.script``). ``extra`` holds the
    architecture-specific arguments that :meth:`arch_config` records.
    """

    #: Whether ``in_channels`` shapes the model (the MLP only sees the flattened size).
    uses_in_channels = True

    def __init__(self, name: str, args: ModelArgs, feature_dim: int, **extra: Any) -> None:
        super().__init__()
        self.arch_name = name
        self.args = args
        self.num_classes = args.num_classes
        self.feature_dim = int(feature_dim)
        self.classifier_kind = args.classifier  # "linear" or "cosine"
        self._extra = dict(extra)

    def _add_heads(self) -> None:
        """Add ``fc`` and ``ssl_head``; subclasses call this after building their body, so
        the heads come last in ``modules()`` and in the state dict."""
        args = self.args
        self.fc: nn.Module
        if args.classifier == "cosine":
            self.fc = CosineClassifier(self.feature_dim, args.num_classes, args.cosine_scale)
        else:
            self.fc = nn.Linear(self.feature_dim, args.num_classes)
        self.ssl_head: nn.Linear | None = (
            nn.Linear(self.feature_dim, 4) if args.ssl_head == "rotation" else None
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def arch_config(self) -> dict[str, Any]:
        """``{"name": ..., "kwargs": {...}}``: ``create_model(name, **kwargs)`` rebuilds it."""
        return {"name": self.arch_name, "kwargs": {**self.args.to_dict(), **self._extra}}
