"""The method registry: one frozen record per distillation method.

A record says everything the engine needs to know about a method: its loss (from
:mod:`softlabels.losses`), its options (type, default, check, help), what it needs from
the cache (a logit teacher, a calibrated one, K feature teachers), the student model it
builds, its default sampler and its step. Plans, CLI flags, validation and the README's
method table are made from these records; no other code asks which method it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from softlabels.errors import UsageError

if TYPE_CHECKING:  # records are torch-free at import, so the CLI starts without torch
    import numpy as np
    import torch

    from softlabels.engine.inputs import Batch
    from softlabels.losses import ClassCounts
    from softlabels.students.targets import TeacherTargets

__all__ = [
    "FinishContext",
    "Method",
    "ModelRequest",
    "Option",
    "StepContext",
    "StepFn",
    "get_method",
    "list_methods",
    "option_kinds",
    "register_method",
]

StepFn = Callable[["torch.nn.Module", "Batch"], "dict[str, torch.Tensor]"]
Kind = Literal["float", "int", "bool", "str", "tau", "names"]
Check = Callable[[str, Any], str | None]  # (name, value) -> "Expected ..." or None when fine


@dataclass(frozen=True)
class Option:
    """One hyper-parameter of a method, as plans and CLI flags see it."""

    name: str
    kind: Kind
    default: Any
    help: str
    check: Check | None = None

    def convert(self, value: Any, where: str) -> Any:
        """``value`` converted to the option's type (raises one line)."""
        return _convert(self, value, where)

    def parse(self, value: Any, where: str) -> Any:
        """``value`` converted to the option's type and checked (raises one line)."""
        value = _convert(self, value, where)
        if self.check is not None and value is not None and value != "auto":
            problem = self.check(self.name, value)
            if problem:
                raise UsageError(f"{problem} {where}")
        return value


def _convert(opt: Option, value: Any, where: str) -> Any:
    bad = UsageError(f"Expected {opt.name} of type {_TYPE_WORDS[opt.kind]}, got {value!r} {where}")
    if isinstance(value, bool) and opt.kind != "bool":
        raise bad
    if opt.kind == "float":
        if not isinstance(value, int | float):
            raise bad
        return float(value)
    if opt.kind == "int":
        if not isinstance(value, int):
            raise bad
        return value
    if opt.kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if opt.kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if opt.kind == "tau":
        if value == "auto":
            return value
        if isinstance(value, str):
            raise UsageError(f"Expected {opt.name} a number or 'auto', got {value!r} {where}")
        if not isinstance(value, int | float):
            raise bad
        return float(value)
    # names: a non-empty list of strings
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise UsageError(f"Expected {opt.name} a non-empty list of names, got {value!r} {where}")


_TYPE_WORDS = {
    "float": "float",
    "int": "int",
    "bool": "bool",
    "str": "str",
    "tau": "float or 'auto'",
    "names": "list of names",
}


# Checks shared by the methods' options: (name, value) -> "Expected ..." or None.
def positive(name: str, v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else f"Expected {name} > 0, got {v}"


def non_negative(name: str, v: float) -> str | None:
    return None if v >= 0 and math.isfinite(v) else f"Expected {name} >= 0, got {v}"


def unit_interval(name: str, v: float) -> str | None:
    return None if 0 <= v <= 1 else f"Expected {name} in [0, 1], got {v}"


def half_open_unit(name: str, v: float) -> str | None:
    return None if 0 <= v < 1 else f"Expected {name} in [0, 1), got {v}"


def power_range(name: str, v: float) -> str | None:
    return None if 0 < v <= 1 else f"Expected {name} in (0, 1], got {v}"


def at_least(n: int) -> Check:
    return lambda name, v: None if v >= n else f"Expected {name} >= {n}, got {v}"


@dataclass(frozen=True)
class ModelRequest:
    """What a method's model builder gets: the student's architecture and its data."""

    model: str  # the backbone architecture (a registered model name or spec)
    classifier: str
    num_classes: int
    input_shape: tuple[int, ...]
    seed: int
    options: Mapping[str, Any]
    feature_dim: int = 0  # sum of the feature teachers' dimensions (CBD)

    @property
    def backbone_kwargs(self) -> dict[str, Any]:
        from softlabels.models import shape_kwargs

        return shape_kwargs(self.model, self.input_shape)

    def build(self, name: str, **kw: Any) -> torch.nn.Module:
        """A registered model with this request's classes, input channels and seed."""
        from softlabels.models import create_model

        return create_model(
            name,
            num_classes=self.num_classes,
            in_channels=int(self.input_shape[0]),
            seed=self.seed,
            **kw,
        )


@dataclass(frozen=True)
class StepContext:
    """What a method's step builder gets; everything checked once, here."""

    name: str  # the student's name
    seed: int
    options: Mapping[str, Any]  # resolved: defaults, then the plan, then tune-tau
    counts: ClassCounts  # training counts per class, on the device
    targets: TeacherTargets | None = None  # the logit teacher's cached outputs
    feature_targets: Sequence[TeacherTargets] = ()  # the feature teachers' (CBD)


@dataclass(frozen=True)
class FinishContext:
    """What a method's finish hook gets: the trained student and the evaluation data."""

    model: torch.nn.Module
    dataset: Any
    counts: np.ndarray  # training counts per class
    groups: str  # the shot-group definition in use
    seed: int
    options: Mapping[str, Any]
    out_dir: Path  # the student's run folder


def _plain_model(req: ModelRequest) -> torch.nn.Module:
    return req.build(req.model, classifier=req.classifier, **req.backbone_kwargs)


@dataclass(frozen=True)
class Method:
    """A distillation (or plain) training method of ``softlabels distill``."""

    name: str
    summary: str
    loss: str  # the public pure function, "softlabels.losses:NAME" (imported when used)
    step: Callable[[StepContext], StepFn]
    options: tuple[Option, ...] = ()
    teacher: Literal["none", "required", "optional"] = "none"
    calibrated_teacher: bool = False  # the logit teacher must come from `softlabels calibrate`
    feature_teachers: bool = False  # K teachers' cached features (the `teachers` option)
    teacher_features: bool = False  # the logit teacher's features, where cached
    sampler: str = "instance"
    model: Callable[[ModelRequest], torch.nn.Module] = _plain_model
    # Extra test metrics of a trained model, from a predict(model, forward) function.
    evaluate: Callable[[torch.nn.Module, Callable[..., dict[str, Any]]], dict[str, Any]] | None = (
        None
    )
    # Extra summary entries after training (e.g. SSD's stage IV), from a FinishContext.
    finish: Callable[[FinishContext], dict[str, Any]] | None = None
    # Entries recorded with the run's config and summary (e.g. how BKD mixes targets), from
    # the options and ``mixed_views=`` (whether the inputs are the cache's mixed views).
    record: Callable[..., dict[str, Any]] | None = None
    check: Callable[[Mapping[str, Any]], str | None] | None = None  # across options
    references: str = ""  # paper; shown in the README's method table

    @property
    def loss_fn(self) -> Callable[..., torch.Tensor]:
        return load_callable(self.loss)

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def not_an_option(self, key: str, where: str) -> str:
        """The one-line refusal of an option this method does not have."""
        owners = "/".join(m.upper() for m in list_methods() if _METHODS[m].option(key))
        known = ", ".join(o.name for o in self.options) or "none"
        if not owners:
            return f"Unknown option {key!r} {where}; method {self.name}'s options: {known}"
        article = "an" if owners[0] in "AEFHILMNORSX" else "a"
        return (
            f"{key} is {article} {owners} option, not one of method {self.name} {where}; "
            f"its options: {known}"
        )

    @property
    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def resolve(self, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The method's defaults overridden by ``given`` (each parsed and checked)."""
        out = self.defaults
        for key, value in given.items():
            opt = self.option(key)
            if opt is None:
                raise UsageError(self.not_an_option(key, where))
            out[key] = opt.parse(value, where)
        if self.check is not None:
            problem = self.check(out)
            if problem:
                raise UsageError(f"{problem} {where}")
        return out


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add a method record; a name registered twice is refused."""
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise UsageError(f"Expected a method among {', '.join(list_methods())}, got {name!r}")
    return _METHODS[name]


def option_kinds() -> dict[str, Option]:
    """Every option name of every method, with its record (one kind per name)."""
    seen: dict[str, Option] = {}
    for name in list_methods():
        for opt in _METHODS[name].options:
            first = seen.setdefault(opt.name, opt)
            if first.kind != opt.kind:
                raise ValueError(
                    f"option {opt.name!r} has kind {first.kind} and {opt.kind} in two methods"
                )
    return seen


def load_callable(dotted: str) -> Callable[..., Any]:
    """``"package.module:NAME"`` imported (records name their functions as text, so that
    reading them imports no torch)."""
    import importlib

    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def mix_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator of one step's input mixing (deterministic in seed, epoch, step)."""
    import numpy as np

    return np.random.Generator(np.random.PCG64([seed, epoch, step]))
