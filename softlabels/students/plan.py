"""Student plans: one frozen spec per student, from CLI flags or a TOML plan file.

A plan file has a ``[defaults]`` table and one ``[[student]]`` table per student::

    [defaults]
    model = "cnn1d"
    epochs = 40
    data_seed = 0          # students with equal data_seed/sampler/batch_size share one pass

    [[student]]
    name = "dive"
    method = "dive"
    teacher = "bsce"
    tau = "auto"           # the temperature chosen by `softlabels tune-tau`

Unknown keys, unknown methods, bad values and duplicate names are refused with one line
naming the student and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from softlabels.errors import UsageError

__all__ = ["StudentSpec", "load_plan", "parse_plan"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class StudentSpec:
    """Everything that defines one student run."""

    name: str
    model: str = "cnn1d"
    method: str = "ce"
    teacher: str | None = None
    teachers: tuple[str, ...] | None = (
        None  # CBD: the K feature teachers (default: all with features)
    )
    tau: float | str | None = None  # None: the method's default; "auto": tune-tau's choice
    power: float | None = None
    alpha: float | None = None
    beta: float | None = None
    tau_bc: float | None = None
    drw_epoch: int | None = None  # BKD deferred re-weighting: plain weights before this epoch
    mixup: float = 0.0  # Beta(mixup, mixup) mixing of student inputs; 0 = off
    feat_weight: float | None = None  # CBD: b, the weight of the feature cosine term
    lambda_hard: float | None = None  # SSD: weight of the hard head's CE
    lambda_soft: float | None = None  # SSD: weight of the soft head's KD
    experts: int = 3  # ECL: number of experts K
    con_weight: float | None = None  # ECL: weight b of the contrastive proxy (0 = off)
    inference: str = "mean"  # ECL: "mean" of the experts' cls heads, or an expert index
    final_lws: bool = False  # SSD stage IV: LWS on the trained student's hard head
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

    def __post_init__(self) -> None:
        from softlabels.engine.optim import OPTIMIZERS, SCHEDULES
        from softlabels.engine.samplers import SAMPLERS
        from softlabels.losses import get_loss

        where = f"(student {self.name!r})"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise UsageError(
                f"Expected a student name of letters, digits, '_', '.', '-', got {self.name!r}"
            )
        get_loss(self.method)  # raises, listing the methods, when unknown
        if isinstance(self.tau, str) and self.tau != "auto":
            raise UsageError(f"Expected tau a number or 'auto', got {self.tau!r} {where}")
        if isinstance(self.tau, int | float) and not (self.tau > 0 and math.isfinite(self.tau)):
            raise UsageError(f"Expected tau > 0, got {self.tau} {where}")
        if self.alpha is not None and self.method != "bkd" and not 0 <= self.alpha <= 1:
            raise UsageError(f"Expected alpha in [0, 1], got {self.alpha} {where}")
        if self.power is not None and not 0 < self.power <= 1:
            raise UsageError(f"Expected power in (0, 1], got {self.power} {where}")
        if self.beta is not None and not 0 <= self.beta < 1:
            raise UsageError(f"Expected beta in [0, 1), got {self.beta} {where}")
        if self.mixup < 0:
            raise UsageError(f"Expected mixup >= 0, got {self.mixup} {where}")
        if self.mixup > 0 and self.method != "bkd":
            raise UsageError(f"mixup is a BKD option; got method {self.method!r} {where}")
        if self.final_lws and self.method != "ssd":
            raise UsageError(f"final_lws is an SSD option; got method {self.method!r} {where}")
        if self.drw_epoch is not None and self.method != "bkd":
            raise UsageError(f"drw_epoch is a BKD option; got method {self.method!r} {where}")
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
        if self.method == "ecl" and self.experts < 2:
            raise UsageError(f"Expected experts >= 2 for ECL, got {self.experts} {where}")
        if self.inference != "mean" and not (
            self.inference.isdigit() and int(self.inference) < self.experts
        ):
            raise UsageError(
                f"Expected inference 'mean' or an expert index < {self.experts}, got {self.inference!r} {where}"
            )
        if self.teachers is not None and (
            not self.teachers or not all(isinstance(t, str) for t in self.teachers)
        ):
            raise UsageError(
                f"Expected teachers a non-empty list of names, got {self.teachers!r} {where}"
            )
        if self.views not in ("auto", "replay", "own"):
            raise UsageError(f"Expected views auto, replay or own, got {self.views!r} {where}")
        if self.seed < 0 or (self.data_seed is not None and self.data_seed < 0):
            raise UsageError(f"Expected seeds >= 0 {where}")

    @property
    def needs_teacher(self) -> bool:
        from softlabels.losses import get_loss

        return get_loss(self.method).needs_teacher

    @property
    def sampler_name(self) -> str:
        if self.sampler is not None:
            return self.sampler
        return "class-balanced" if self.method == "cbd" else "instance"

    @property
    def stream_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {f.name: f for f in fields(StudentSpec)}
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "model": (str,),
    "method": (str,),
    "teacher": (str,),
    "teachers": (list,),
    "tau": (int, float, str),
    "power": (int, float),
    "alpha": (int, float),
    "beta": (int, float),
    "tau_bc": (int, float),
    "drw_epoch": (int,),
    "mixup": (int, float),
    "feat_weight": (int, float),
    "lambda_hard": (int, float),
    "lambda_soft": (int, float),
    "experts": (int,),
    "con_weight": (int, float),
    "inference": (str,),
    "final_lws": (bool,),
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
}


def _check_table(table: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if key not in _FIELDS:
            raise UsageError(
                f"Unknown key {key!r} in {where}; expected one of: {', '.join(sorted(_FIELDS))}"
            )
        types = _TYPES[key]
        if isinstance(value, bool) and bool not in types:
            raise UsageError(
                f"Expected {key} of type {types[0].__name__}, got {value!r} (in {where})"
            )
        if not isinstance(value, types):
            raise UsageError(
                f"Expected {key} of type {types[0].__name__}, got {value!r} (in {where})"
            )
        out[key] = (
            float(value)
            if float in types and int in types and not isinstance(value, str)
            else value
        )
    return out


def parse_plan(
    doc: dict[str, Any], *, overrides: dict[str, Any] | None = None
) -> list[StudentSpec]:
    """Specs from a parsed plan document (``[defaults]`` + ``[[student]]``)."""
    unknown = set(doc) - {"defaults", "student"}
    if unknown:
        raise UsageError(
            f"Unknown table(s) {sorted(unknown)} in plan; expected [defaults] and [[student]]"
        )
    defaults = _check_table(dict(doc.get("defaults", {})), "[defaults]")
    defaults.pop("name", None)
    students = doc.get("student")
    if not isinstance(students, list) or not students:
        raise UsageError("Expected at least one [[student]] table in the plan")
    specs = []
    for i, table in enumerate(students):
        if not isinstance(table, dict):
            raise UsageError(f"Expected [[student]] tables, got {table!r}")
        where = f"[[student]] #{i + 1}" + (f" ({table['name']!r})" if "name" in table else "")
        entry = _check_table(table, where)
        if "name" not in entry:
            raise UsageError(f"Expected a name in {where}")
        merged = defaults | entry | (overrides or {})
        specs.append(StudentSpec(**merged))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"Expected distinct student names, got duplicates {dupes}")
    return specs


def load_plan(path: str | Path, *, overrides: dict[str, Any] | None = None) -> list[StudentSpec]:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"Plan file {p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Plan file {p} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Plan file {p} cannot be read: {exc}") from None
    return parse_plan(doc, overrides=overrides)


def with_defaults(spec: StudentSpec, **kw: Any) -> StudentSpec:
    return replace(spec, **kw)
