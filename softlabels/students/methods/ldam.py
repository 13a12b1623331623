"""LDAM: label-distribution-aware margins (Cao et al. 2019)."""

from __future__ import annotations

from softlabels.students.methods._registry import (
    Method,
    Option,
    non_negative,
    positive,
    register_method,
)
from softlabels.students.methods._steps import logit_step

METHOD = register_method(
    Method(
        name="ldam",
        summary="label-distribution-aware margin loss",
        loss="softlabels.losses:ldam",
        options=(
            Option("max_margin", "float", 0.5, "LDAM: the largest margin", non_negative),
            Option("scale", "float", 30.0, "LDAM: logit scale s", positive),
        ),
        step=logit_step("softlabels.losses:ldam", ("max_margin", "scale"), teacher=False),
    )
)
