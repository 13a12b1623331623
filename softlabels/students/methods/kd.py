"""KD: Hinton knowledge distillation (METHODS §4)."""

from __future__ import annotations

from softlabels.students.methods._registry import (
    Method,
    Option,
    positive,
    register_method,
    unit_interval,
)
from softlabels.students.methods._steps import logit_step

METHOD = register_method(
    Method(
        name="kd",
        summary="Hinton KD: (1 - a) CE + a T^2 KL(teacher || student)",
        loss="softlabels.losses:kd",
        options=(
            Option("tau", "tau", 4.0, "temperature T, or 'auto' (tune-tau's choice)", positive),
            Option("alpha", "float", 0.9, "weight a of the distillation term", unit_interval),
        ),
        teacher="required",
        step=logit_step("softlabels.losses:kd", ("tau", "alpha"), teacher=True),
        references="Hinton et al. 2015",
    )
)
