"""Distillation methods, one module each, registered as frozen :class:`Method` records.

Adding a method is one file here (its record: loss, options, needs, model, step) and one
import below; plans, CLI flags, validation and the README's method table follow from it.
"""

from __future__ import annotations

from typing import Any

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
    "method_table",
    "option_kinds",
    "register_method",
]


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
