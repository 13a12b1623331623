"""Students: plans, methods, cached teacher targets and the distill run.

The distill run (torch) loads on first use, so plans and method records can be read, and
the CLI built, without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from softlabels.students.plan import StudentSpec, load_plan, parse_plan

if TYPE_CHECKING:
    from softlabels.students.distillation import DistillResult, distill

__all__ = ["DistillResult", "StudentSpec", "distill", "load_plan", "parse_plan"]


def __getattr__(name: str) -> Any:
    if name in ("DistillResult", "distill"):
        from softlabels.students import distillation

        return getattr(distillation, name)
    raise AttributeError(f"module 'softlabels.students' has no attribute {name!r}")
