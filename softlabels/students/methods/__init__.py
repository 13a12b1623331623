"""Distillation methods, one module each, registered as frozen :class:`Method` records.

Adding a method is one file here (its record: loss, options, needs, model, step) and one
import below; plans, CLI flags, validation and the README's method table follow from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from softlabels.errors import UsageError

# Importing the method modules registers them.
from softlabels.students.methods import bkd as bkd
from softlabels.students.methods import bsce as bsce
from softlabels.students.methods import cbd as cbd
from softlabels.students.methods import ce as ce
from softlabels.students.methods import dive as dive
from softlabels.students.methods import dkd as dkd
from softlabels.students.methods import ecl as ecl
from softlabels.students.methods import kd as kd
from softlabels.students.methods import ldam as ldam
from softlabels.students.methods import ssd as ssd
from softlabels.students.methods._registry import (
    FinishContext,
    Method,
    ModelRequest,
    Option,
    StepContext,
    StepFn,
    get_method,
    list_methods,
    option_kinds,
    register_method,
)

if TYPE_CHECKING:
    from softlabels.students.plan import StudentSpec

__all__ = [
    "FinishContext",
    "Method",
    "ModelRequest",
    "Option",
    "StepContext",
    "StepFn",
    "describe_methods",
    "get_method",
    "list_methods",
    "make_step",
    "method_table",
    "option_kinds",
    "register_method",
    "resolve_hparams",
]


def resolve_hparams(spec: StudentSpec, tune_tau: Mapping[str, Any] | None) -> dict[str, Any]:
    """A student's options: the method's defaults, then its spec, then ``tau = "auto"``
    replaced by the teacher's tune-tau choice (and ``power`` too, unless the spec sets it)."""
    method = get_method(spec.method)
    hp = method.resolve(spec.options, f"(student {spec.name!r})")
    if hp.get("tau") == "auto":
        if not tune_tau or "choice" not in tune_tau:
            raise UsageError(
                f"student {spec.name!r} asks for tau = auto, but the cache has no tune-tau choice; "
                "run `softlabels tune-tau CACHE` first"
            )
        choice = tune_tau["choice"]
        hp["tau"] = float(choice["tau"])
        if method.option("power") is not None and "power" not in spec.options:
            hp["power"] = float(choice["power"])
    return hp


def make_step(
    spec: StudentSpec,
    hp: Mapping[str, Any],
    counts: Any,
    targets: Any = None,
    feature_targets: Any = (),
) -> StepFn:
    """The step of a student's method: ``(model, batch) -> {"loss", parts}``.

    ``counts`` are the training counts per class (a tensor on the training device), checked
    here once; ``targets`` the logit teacher's :class:`TeacherTargets`, ``feature_targets``
    the feature teachers' (CBD).
    """
    from softlabels.losses import ClassCounts

    method = get_method(spec.method)
    if method.teacher == "required" and targets is None:
        raise UsageError(f"student {spec.name!r} (method {spec.method}) needs a teacher")
    checked = counts if isinstance(counts, ClassCounts) else ClassCounts(counts, len(counts))
    ctx = StepContext(
        name=spec.name,
        seed=spec.seed,
        options=dict(hp),
        counts=checked,
        targets=targets,
        feature_targets=tuple(feature_targets or ()),
    )
    return method.step(ctx)


def _needs(method: Method) -> str:
    parts = []
    if method.teacher != "none":
        what = "calibrated teacher" if method.calibrated_teacher else "teacher"
        parts.append(what if method.teacher == "required" else f"{what} (optional)")
    if method.feature_teachers:
        parts.append("K teachers' features")
    if method.teacher_features:
        parts.append("teacher features (when cached)")
    return ", ".join(parts) or "-"


def describe_methods() -> list[dict[str, Any]]:
    """Every method as plain data (``softlabels methods --json``, the README's table)."""
    return [
        {
            "name": m.name,
            "summary": m.summary,
            "loss": m.loss,
            "needs": _needs(m),
            "sampler": m.sampler,
            "options": [
                {"name": o.name, "kind": o.kind, "default": o.default, "help": o.help}
                for o in m.options
            ],
            "references": m.references,
        }
        for m in (get_method(n) for n in list_methods())
    ]


def method_table() -> str:
    """The README's method table (markdown), made from the records."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        "| method | what it trains | needs | sampler | options (defaults) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in describe_methods():
        opts = ", ".join(f"`{o['name']} = {o['default']}`" for o in d["options"]) or "-"
        rows.append(
            f"| `{d['name']}` | {cell(d['summary'])} | {d['needs']} | {d['sampler']} | {opts} |"
        )
    return "\n".join(rows)
