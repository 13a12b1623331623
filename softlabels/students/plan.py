"""Student plans: one frozen spec per student, from CLI flags or a TOML plan file.

A plan file has a ``[defaults]`` table and one ``[[student]]`` table per student::

    [defaults]
    model = "cnn1d"
    epochs = 40
    data_seed = 0          # students with equal data_seed/sampler/batch_size share one pass

    target_memory = "2GB"  # run settings, before the tables (see RUN_SETTINGS)

    [[student]]
    name = "dive"
    method = "dive"
    teacher = "bsce"
    tau = "auto"           # the temperature chosen by `softlabels tune-tau`

Keys are the training settings below (``StudentSpec``'s fields) and the options of the
student's method (:mod:`softlabels.students.methods`). Unknown keys, an option the
student's method does not have, unknown methods, bad values and duplicate names are
refused with one line naming the student and the key. A method option in ``[defaults]``
(or a CLI flag given with a plan) applies to the students whose method has it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from softlabels.errors import UsageError
from softlabels.students.methods import get_method, option_kinds

__all__ = ["RUN_SETTINGS", "StudentSpec", "load_plan", "parse_plan", "plan_run_settings"]

# Keys of a plan's top level that set the whole run, not a student (``distill`` keywords).
RUN_SETTINGS: dict[str, tuple[type, ...]] = {
    "target_memory": (str, int),
    "shuffle": (str,),
    "shuffle_buffer": (int,),
    "prefetch": (int,),
}

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, init=False)
class StudentSpec:
    """Everything that defines one student run: training settings and method options.

    ``StudentSpec(name, method="dive", tau=3.0, epochs=40)``: keywords that are not
    training settings are options of the method, checked against its record (and kept in
    ``options``; unset options keep the method's defaults).
    """

    name: str
    model: str = "cnn1d"
    method: str = "ce"
    teacher: str | None = None
    classifier: str = "linear"
    epochs: int = 30
    lr: float = 0.05
    batch_size: int = 64
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    sampler: str | None = None  # None: the method's (class-balanced for CBD, else instance)
    seed: int = 0
    data_seed: int | None = None  # None: same as seed
    views: str = "auto"  # auto | replay | own (own augmentation with the clean/first view's target)
    view_schedule: str = (
        "auto"  # replayed views: auto (the cache's) | epoch (view e mod V) | random
    )
    online: bool = False  # the teacher runs in the loop on the student's inputs (no cached targets)
    replay_views: int | None = None  # replay only the first N cached views (None: all of them)
    options: Mapping[str, Any] = field(default_factory=dict)  # the method options given

    def __init__(self, name: str, **kw: Any) -> None:
        given = dict(kw.pop("options", None) or {})
        for key in list(kw):
            if key not in _SETTINGS:
                given[key] = kw.pop(key)
        object.__setattr__(self, "name", name)
        for f in fields(self):
            if f.name in ("name", "options"):
                continue
            object.__setattr__(self, f.name, kw.get(f.name, f.default))
        object.__setattr__(self, "options", {})
        self.__post_init__()
        method = get_method(self.method)
        where = f"(student {self.name!r})"
        parsed = {}
        for key, value in given.items():
            if value is None:  # unset: the method's default
                continue
            opt = method.option(key)
            if opt is None:
                raise UsageError(method.not_an_option(key, where))
            parsed[key] = opt.parse(value, where)
        method.resolve(parsed, where)  # checks across options
        object.__setattr__(self, "options", parsed)

    def __post_init__(self) -> None:
        from softlabels.engine.optim import OPTIMIZERS, SCHEDULES
        from softlabels.engine.samplers import SAMPLERS

        where = f"(student {self.name!r})"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise UsageError(
                f"Expected a student name of letters, digits, '_', '.', '-', got {self.name!r}"
            )
        get_method(self.method)  # raises, listing the methods, when unknown
        if self.classifier not in ("linear", "cosine"):
            raise UsageError(
                f"Expected classifier linear or cosine, got {self.classifier!r} {where}"
            )
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise UsageError(f"Expected {key} >= 1, got {getattr(self, key)} {where}")
        if not self.lr > 0:
            raise UsageError(f"Expected lr > 0, got {self.lr} {where}")
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise UsageError(
                f"Expected sampler among {', '.join(SAMPLERS)}, got {self.sampler!r} {where}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(
                f"Expected optimizer among {', '.join(OPTIMIZERS)}, got {self.optimizer!r} {where}"
            )
        if self.schedule not in SCHEDULES:
            raise UsageError(
                f"Expected schedule among {', '.join(SCHEDULES)}, got {self.schedule!r} {where}"
            )
        if self.views not in ("auto", "replay", "own"):
            raise UsageError(f"Expected views auto, replay or own, got {self.views!r} {where}")
        if self.view_schedule not in ("auto", "epoch", "random"):
            raise UsageError(
                f"Expected view_schedule auto, epoch or random, got {self.view_schedule!r} {where}"
            )
        if self.online and self.views == "replay":
            raise UsageError(
                f"Expected views auto or own with online = true (the teacher sees the "
                f"student's own inputs), got views = {self.views!r} {where}"
            )
        if self.replay_views is not None and self.replay_views < 1:
            raise UsageError(f"Expected replay_views >= 1, got {self.replay_views} {where}")
        if self.seed < 0 or (self.data_seed is not None and self.data_seed < 0):
            raise UsageError(f"Expected seeds >= 0 {where}")

    def __getattr__(self, key: str) -> Any:
        # spec.tau and the like: the given value of a method option, None when unset
        if key in option_kinds():
            return self.__dict__.get("options", {}).get(key)
        raise AttributeError(f"'StudentSpec' object has no attribute {key!r}")

    @property
    def sampler_name(self) -> str:
        return self.sampler if self.sampler is not None else get_method(self.method).sampler

    @property
    def stream_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def to_dict(self) -> dict[str, Any]:
        """Training settings and the given options, flat (``StudentSpec(**d)`` rebuilds it)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        return out | {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}


_SETTINGS = {f.name for f in fields(StudentSpec)} - {"options"}
_SETTING_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "model": (str,),
    "method": (str,),
    "teacher": (str,),
    "classifier": (str,),
    "epochs": (int,),
    "lr": (int, float),
    "batch_size": (int,),
    "optimizer": (str,),
    "momentum": (int, float),
    "nesterov": (bool,),
    "weight_decay": (int, float),
    "schedule": (str,),
    "warmup_epochs": (int, float),
    "sampler": (str,),
    "seed": (int,),
    "data_seed": (int,),
    "views": (str,),
    "view_schedule": (str,),
    "online": (bool,),
    "replay_views": (int,),
}
assert set(_SETTING_TYPES) == _SETTINGS


def _check_settings(table: dict[str, Any], where: str) -> dict[str, Any]:
    """Type-check a plan table: training settings here, method options by some method's
    record (each student's own method checks them again when its spec is built)."""
    options = option_kinds()
    out = {}
    for key, value in table.items():
        if key in options:
            out[key] = options[key].convert(value, f"(in {where})")
            continue
        if key not in _SETTINGS:
            known = sorted(_SETTINGS | set(options))
            raise UsageError(f"Unknown key {key!r} in {where}; expected one of: {', '.join(known)}")
        types = _SETTING_TYPES[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise UsageError(
                f"Expected {key} of type {types[0].__name__}, got {value!r} (in {where})"
            )
        out[key] = float(value) if float in types else value
    return out


def _for_method(shared: dict[str, Any], method: str) -> dict[str, Any]:
    """The shared values (plan defaults, CLI overrides) that apply to a method's students."""
    m = get_method(method)
    return {k: v for k, v in shared.items() if k not in option_kinds() or m.option(k) is not None}


def parse_plan(
    doc: dict[str, Any], *, overrides: dict[str, Any] | None = None
) -> list[StudentSpec]:
    """Specs from a parsed plan document (``[defaults]`` + ``[[student]]``)."""
    unknown = set(doc) - {"defaults", "student"} - set(RUN_SETTINGS)
    if unknown:
        raise UsageError(
            f"Unknown table(s) {sorted(unknown)} in plan; expected [defaults] and [[student]]"
            f" (and the run settings {', '.join(RUN_SETTINGS)})"
        )
    run_settings(doc)
    defaults = _check_settings(dict(doc.get("defaults", {})), "[defaults]")
    defaults.pop("name", None)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    students = doc.get("student")
    if not isinstance(students, list) or not students:
        raise UsageError("Expected at least one [[student]] table in the plan")
    specs = []
    for i, table in enumerate(students):
        if not isinstance(table, dict):
            raise UsageError(f"Expected [[student]] tables, got {table!r}")
        where = f"[[student]] #{i + 1}" + (f" ({table['name']!r})" if "name" in table else "")
        entry = _check_settings(table, where)
        if "name" not in entry:
            raise UsageError(f"Expected a name in {where}")
        method = overrides.get("method", entry.get("method", defaults.get("method", "ce")))
        merged = _for_method(defaults, method) | entry | _for_method(overrides, method)
        specs.append(StudentSpec(**merged))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"Expected distinct student names, got duplicates {dupes}")
    return specs


def run_settings(doc: dict[str, Any]) -> dict[str, Any]:
    """The run settings of a parsed plan document, type-checked."""
    out = {}
    for key, types in RUN_SETTINGS.items():
        if key not in doc:
            continue
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise UsageError(f"Expected {key} of type {types[0].__name__}, got {value!r} (in plan)")
        out[key] = value
    return out


def plan_run_settings(path: str | Path) -> dict[str, Any]:
    """The run settings (``target_memory`` ...) of a plan file."""
    return run_settings(_read_plan(path))


def load_plan(path: str | Path, *, overrides: dict[str, Any] | None = None) -> list[StudentSpec]:
    return parse_plan(_read_plan(path), overrides=overrides)


def _read_plan(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"Plan file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Plan file {p} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Plan file {p} cannot be read: {exc}") from None
    return doc
