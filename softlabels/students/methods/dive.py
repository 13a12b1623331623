"""DiVE: distilling virtual examples (He, Wu, Wei, ICCV 2021; METHODS §5)."""

from __future__ import annotations

from softlabels.students.methods._registry import (
    Method,
    Option,
    positive,
    power_range,
    register_method,
    unit_interval,
)
from softlabels.students.methods._steps import logit_step

METHOD = register_method(
    Method(
        name="dive",
        summary="DiVE: (1 - a) BSCE + a T^2 KL(power-normalised teacher || student)",
        loss="softlabels.losses:dive",
        options=(
            Option("tau", "tau", 3.0, "temperature T, or 'auto' (tune-tau's choice)", positive),
            Option("power", "float", 0.5, "power normalisation p of the teacher", power_range),
            Option("alpha", "float", 0.5, "weight a of the distillation term", unit_interval),
        ),
        teacher="required",
        step=logit_step("softlabels.losses:dive", ("tau", "power", "alpha"), teacher=True),
        references="He, Wu, Wei, ICCV 2021",
    )
)
