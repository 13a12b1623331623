"""BSCE: balanced softmax / logit-adjusted cross-entropy (METHODS §3)."""

from __future__ import annotations

from softlabels.students.methods._registry import Method, Option, register_method
from softlabels.students.methods._steps import logit_step

METHOD = register_method(
    Method(
        name="bsce",
        summary="balanced softmax: CE(z + tau_bc log pi, y)",
        loss="softlabels.losses:bsce",
        options=(Option("tau_bc", "float", 1.0, "weight of log pi added to the logits"),),
        step=logit_step("softlabels.losses:bsce", ("tau_bc",), teacher=False),
    )
)
