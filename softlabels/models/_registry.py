"""Model registry: ``@register_model`` fills a dict, ``create_model`` is the one way in.

An entrypoint is a function ``fn(args: ModelArgs, *, <its own keyword arguments>)`` that
returns an ``nn.Module`` (a :class:`~softlabels.models._base.ClassifierNet` for the
built-ins). It may also take ``seed`` when it initialises parameters after construction
(the lazy ``mlp``). Variants are data: one thin entrypoint per name.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

import torch
from torch import nn

from softlabels.errors import SpecError, UsageError
from softlabels.models._base import ModelArgs

__all__ = ["create_model", "is_model", "list_models", "register_model"]

F = TypeVar("F", bound=Callable[..., nn.Module])

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}


@overload
def register_model(fn: F, *, name: str | None = None) -> F: ...
@overload
def register_model(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
def register_model(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register an entrypoint under its function name (or ``name``); a second one raises.

    Use as ``@register_model`` or ``@register_model(name="resnet32-wide")``.
    """

    def add(f: F) -> F:
        key = name if name is not None else f.__name__
        if key in _model_entrypoints:
            old = _model_entrypoints[key]
            raise UsageError(
                f"Model {key!r} is already registered (by {old.__module__}.{old.__qualname__}); "
                "choose another name"
            )
        _model_entrypoints[key] = f
        return f

    return add(fn) if fn is not None else add


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered architectures, optionally filtered by a glob."""
    names = sorted(_model_entrypoints)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def is_model(name: object) -> bool:
    """Whether ``name`` is a registered architecture."""
    return isinstance(name, str) and name in _model_entrypoints


def _accepted_kwargs(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """Keyword arguments an entrypoint takes besides ``args``, and whether it takes **kw."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    names = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    classifier: str = "linear",
    cosine_scale: float = 20.0,
    ssl_head: str | None = None,
    seed: int | None = None,
    **kw: Any,
) -> nn.Module:
    """Build a registered architecture.

    ``kw`` are the architecture's own arguments (``in_features`` for ``mlp``); ``None``
    values are dropped so unset CLI options keep the architecture's defaults. With ``seed``
    the initialisation is deterministic and the global RNG state is left untouched;
    without it the global RNG is used as usual.
    """
    if not is_model(name):
        raise SpecError(f"Unknown model {name!r}; expected one of: {', '.join(list_models())}")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise UsageError(f"Expected seed None or an integer >= 0, got {seed!r}")
    args = ModelArgs(
        num_classes=num_classes,
        in_channels=in_channels,
        classifier=classifier,
        cosine_scale=cosine_scale,
        ssl_head=ssl_head,
    )
    fn = _model_entrypoints[name]
    kw = {k: v for k, v in kw.items() if v is not None}
    accepted, var_kw = _accepted_kwargs(fn)
    accepted.discard("seed")
    unknown = sorted(set(kw) - accepted)
    if unknown and not var_kw:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise UsageError(
            f"Unexpected argument(s) {', '.join(unknown)} for model {name!r}; "
            f"its own arguments are: {allowed}"
        )
    if "seed" in inspect.signature(fn).parameters:
        kw["seed"] = seed
    if seed is None:
        model = fn(args, **kw)
    else:
        # fork_rng restores the CPU RNG state on exit; models are built on the CPU.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = fn(args, **kw)
    if not isinstance(model, nn.Module):
        raise TypeError(f"Entrypoint for {name!r} returned {type(model).__name__}, not nn.Module")
    return model
