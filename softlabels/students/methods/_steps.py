"""Step builders shared by methods whose loss takes the student's logits alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from softlabels.errors import UsageError
from softlabels.students.methods._registry import StepContext, StepFn, load_callable

if TYPE_CHECKING:
    import torch

    from softlabels.engine.inputs import Batch

__all__ = ["logit_step", "teacher_logits"]


def teacher_logits(ctx: StepContext, batch: Batch) -> torch.Tensor:
    """The teacher's logits on exactly this batch's inputs ([B, C], float32): the cached
    target of the replayed views, or the teacher run in the loop (``--online``)."""
    assert ctx.targets is not None
    return ctx.targets.batch_logits(batch)


def logit_step(loss: str, keys: Sequence[str], *, teacher: bool) -> Callable[[StepContext], StepFn]:
    """A step ``loss(student_logits=model(x), labels=y, class_counts, [teacher_logits], **hp)``
    with ``hp`` the options named in ``keys``."""

    def build(ctx: StepContext) -> StepFn:
        if teacher and ctx.targets is None:
            raise UsageError(f"student {ctx.name!r} needs a teacher")
        fn = load_callable(loss)
        hp: dict[str, Any] = {k: ctx.options[k] for k in keys}

        def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
            kw: dict[str, Any] = {"class_counts": ctx.counts, **hp}
            if teacher:
                kw["teacher_logits"] = teacher_logits(ctx, batch)
            return {"loss": fn(student_logits=model(batch.x).float(), labels=batch.labels, **kw)}

        return step

    return build
