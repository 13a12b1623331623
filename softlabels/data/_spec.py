"""Dataset spec strings: ``NAME[:key=value,...]`` and ``py:MODULE:CALLABLE[:key=value,...]``.

A spec names a dataset and its options. Parsing checks the name and every key against the
registry, converts each value to the type of its default, fills in the defaults and gives a
*canonical* spec: the name followed by every option (defaults included) sorted by key, e.g.
``cifar100-lt:imb=100,root=data,seed=0``. The canonical spec is what ``Dataset.spec`` holds,
what caches record and what ``load_dataset`` caches on.

Values may not contain ``,`` (the option separator); a value may contain ``:`` and ``=``
(everything after the first ``=`` of an option is its value).
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from softlabels.errors import SpecError

__all__ = ["REQUIRED", "DatasetSpec", "format_value", "parse_spec", "resolve_callable"]


class _Required:
    """Marker for an option without a default (its value is a string)."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default value of a required option, e.g. ``defaults={"root": REQUIRED}``."""

Scalar = bool | int | float | str

_PY_PREFIX = "py"
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed and resolved dataset spec.

    ``name`` is the registered name, or ``"py:MODULE:CALLABLE"`` for a Python dataset;
    ``options`` holds every option (defaults filled in) with its typed value.
    """

    name: str
    options: dict[str, Scalar] = field(default_factory=dict)

    @property
    def is_python(self) -> bool:
        return self.name.startswith(_PY_PREFIX + ":")

    @property
    def canonical(self) -> str:
        if not self.options:
            return self.name
        body = ",".join(f"{k}={format_value(self.options[k])}" for k in sorted(self.options))
        return f"{self.name}:{body}"

    def __str__(self) -> str:
        return self.canonical


def format_value(value: Scalar) -> str:
    """The canonical text of an option value (inverse of the parser)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse_bool(text: str) -> bool | None:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _convert(text: str, default: Any, key: str, spec: str) -> Scalar:
    """Convert ``text`` to the type of ``default``."""
    where = f"(at {key} in {spec!r})"
    if default is REQUIRED or isinstance(default, str):
        if not text:
            raise SpecError(f"Expected a non-empty value, got '' {where}")
        return text
    if isinstance(default, bool):
        value = _parse_bool(text)
        if value is None:
            raise SpecError(f"Expected true or false, got {text!r} {where}")
        return value
    if isinstance(default, int):
        ivalue = _parse_int(text)
        if ivalue is None:
            raise SpecError(f"Expected an integer, got {text!r} {where}")
        return ivalue
    if isinstance(default, float):
        fvalue = _parse_float(text)
        if fvalue is None:
            raise SpecError(f"Expected a finite number, got {text!r} {where}")
        return fvalue
    raise TypeError(f"Unsupported default {default!r} for option {key}")


def _auto(text: str) -> Scalar:
    """Guess the type of an option of a Python dataset: int, float, bool, else str."""
    ivalue = _parse_int(text)
    if ivalue is not None:
        return ivalue
    fvalue = _parse_float(text)
    if fvalue is not None and any(c.isdigit() for c in text):
        return fvalue
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return text


def _split_options(body: str, spec: str) -> dict[str, str]:
    raw: dict[str, str] = {}
    if not body.strip():
        return raw
    for part in body.split(","):
        if "=" not in part:
            raise SpecError(
                f"Expected key=value, got {part.strip()!r} (in spec {spec!r}); separate options "
                "with ','"
            )
        key, value = part.split("=", 1)
        key, value = key.strip(), value.strip()
        if not _KEY_RE.match(key):
            raise SpecError(f"Expected an option name like 'imb', got {key!r} (in spec {spec!r})")
        if key in raw:
            raise SpecError(f"Expected each key once, got {key!r} twice (in spec {spec!r})")
        raw[key] = value
    return raw


def resolve_callable(name: str, spec: str) -> Callable[..., Any]:
    """Import ``py:MODULE:CALLABLE`` (the callable may be a dotted attribute path)."""
    _, module_name, attr = name.split(":", 2)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise SpecError(
            f"Cannot import module {module_name!r} ({err}) (in spec {spec!r}); check the module "
            "name and that it is on sys.path"
        ) from err
    for piece in attr.split("."):
        if not hasattr(obj, piece):
            raise SpecError(
                f"Module {module_name!r} has no attribute {attr!r} (in spec {spec!r}); expected "
                "py:MODULE:CALLABLE"
            )
        obj = getattr(obj, piece)
    if not callable(obj):
        raise SpecError(f"Expected a callable, got {type(obj).__name__} (at {attr} in {spec!r})")
    return obj  # type: ignore[no-any-return]


def _python_spec(spec: str) -> DatasetSpec:
    parts = spec.split(":", 3)
    if len(parts) < 3 or not parts[1].strip() or not parts[2].strip():
        raise SpecError(f"Expected py:MODULE:CALLABLE[:key=value,...], got {spec!r}")
    module_name, attr = parts[1].strip(), parts[2].strip()
    name = f"{_PY_PREFIX}:{module_name}:{attr}"
    raw = _split_options(parts[3] if len(parts) == 4 else "", spec)
    fn = resolve_callable(name, spec)
    params: Mapping[str, inspect.Parameter] = {}
    accepts_any = True
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        pass
    else:
        params = sig.parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    keyword_ok = {
        n
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    options: dict[str, Scalar] = {}
    for key, text in raw.items():
        if not accepts_any and key not in keyword_ok:
            valid = ", ".join(sorted(keyword_ok)) or "(none)"
            raise SpecError(f"Unknown key {key!r} for dataset {name!r}; valid keys: {valid}")
        default = params[key].default if key in params else inspect.Parameter.empty
        if isinstance(default, bool | int | float | str):
            options[key] = _convert(text, default, key, spec)
        else:
            options[key] = _auto(text)
    # Record scalar defaults of the callable too, so the canonical spec names the data fully.
    for key in keyword_ok - options.keys():
        default = params[key].default
        if isinstance(default, bool | int | float | str) and "," not in format_value(default):
            options[key] = default
    return DatasetSpec(name, options)


def parse_spec(spec: str, registry: Mapping[str, Mapping[str, Any]]) -> DatasetSpec:
    """Parse ``spec`` against ``registry`` (name -> option defaults).

    Raises :class:`~softlabels.errors.SpecError` for an unknown name or key, a malformed
    option, a value of the wrong type or a missing required option. The registered datasets
    are supplied by :func:`softlabels.data.parse_dataset_spec`; this module knows no registry.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"Expected a dataset spec NAME[:key=value,...], got {spec!r}")
    spec = spec.strip()
    if spec.split(":", 1)[0].strip() == _PY_PREFIX:
        return _python_spec(spec)
    name, _, body = spec.partition(":")
    name = name.strip()
    if name not in registry:
        valid = ", ".join(sorted(registry))
        raise SpecError(
            f"Unknown dataset {name!r}; expected one of: {valid}, or py:MODULE:CALLABLE"
        )
    defaults = registry[name]
    raw = _split_options(body, spec)
    options: dict[str, Scalar] = {}
    for key, text in raw.items():
        if key not in defaults:
            valid = ", ".join(sorted(defaults)) or "(none)"
            raise SpecError(f"Unknown key {key!r} for dataset {name!r}; valid keys: {valid}")
        options[key] = _convert(text, defaults[key], key, spec)
    for key, default in defaults.items():
        if key in options:
            continue
        if default is REQUIRED:
            raise SpecError(
                f"Expected a value for {key!r}, got none (at {key} in {spec!r}); write "
                f"'{name}:{key}=...'"
            )
        options[key] = default
    return DatasetSpec(name, options)
