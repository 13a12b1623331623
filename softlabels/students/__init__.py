"""Students: plans, cached teacher targets, methods and the distill run."""

from softlabels.students.plan import StudentSpec, load_plan, parse_plan
from softlabels.students.run import DistillResult, distill

__all__ = ["DistillResult", "StudentSpec", "distill", "load_plan", "parse_plan"]
