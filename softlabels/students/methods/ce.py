"""CE: plain cross-entropy (METHODS §3)."""

from __future__ import annotations

from softlabels.students.methods._registry import Method, register_method
from softlabels.students.methods._steps import logit_step

METHOD = register_method(
    Method(
        name="ce",
        summary="cross-entropy",
        loss="softlabels.losses:ce",
        step=logit_step("softlabels.losses:ce", (), teacher=False),
    )
)
