"""A student's resolved options and its training step, from its spec and method record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from softlabels.errors import UsageError
from softlabels.students.methods import StepContext, StepFn, get_method
from softlabels.students.plan import StudentSpec

__all__ = ["make_step", "resolve_hparams"]


def resolve_hparams(
    spec: StudentSpec, tune_tau: Mapping[str, Any] | None, *, known: Sequence[str] = ()
) -> dict[str, Any]:
    """A student's options: the method's defaults, then its spec, then ``tau = "auto"``
    replaced by its teacher's tune-tau choice ``tune_tau`` (and ``power`` too, unless the
    spec sets it). ``known``: the teachers that have a choice, for the refusal."""
    method = get_method(spec.method)
    hp = method.resolve(spec.options, f"(student {spec.name!r})")
    if hp.get("tau") == "auto":
        if not tune_tau or "choice" not in tune_tau:
            which = f"teacher {spec.teacher!r}" if spec.teacher else "its teacher"
            others = f" (the cache has one for {', '.join(known)})" if known else ""
            raise UsageError(
                f"student {spec.name!r} asks for tau = auto, but the cache has no tune-tau choice "
                f"for {which}{others}; run `softlabels tune-tau CACHE --teacher "
                f"{spec.teacher or 'NAME'}` first"
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
