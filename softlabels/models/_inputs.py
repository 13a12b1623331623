"""Architecture arguments that follow from the input shape."""

from __future__ import annotations

import math
from typing import Any

from softlabels.models._registry import _accepted_kwargs, _model_entrypoints

__all__ = ["shape_kwargs"]


def shape_kwargs(name: str, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The input-size arguments a registered architecture takes besides ``in_channels``:
    ``in_features`` (flattened input size) for those that accept it, such as ``mlp``."""
    fn = _model_entrypoints.get(name)
    if fn is None:
        return {}
    accepted, _ = _accepted_kwargs(fn)
    return {"in_features": math.prod(input_shape)} if "in_features" in accepted else {}
