"""The training loop: several students, one pass over the batches, resumable per student.

A student is a model, its optimiser and schedule, and a step function (the method) that
turns a batch into ``{"loss": ..., <named parts>}``. Every batch of the shared stream is
fed to every active student. A student whose loss becomes NaN/Inf stops (student, epoch
and step recorded); the others go on. Each student's state is saved atomically after each
epoch, and since samplers and augmentation depend only on (seed, epoch), a resumed run
ends with the same weights as an uninterrupted one (on CPU).

Distributed (a stream with ``world`` > 1, under torchrun): each student's step runs inside
DistributedDataParallel on the rank's slice of the global batch; the loss is weighted by the
slice's share so the averaged gradient is the global batch's, whatever the slice sizes.
BatchNorm layers become SyncBatchNorm on CUDA; on the CPU (gloo has no SyncBatchNorm) they
use each rank's slice statistics. Only rank 0 evaluates and saves state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from softlabels.engine.inputs import Batch, BatchStream
from softlabels.engine.optim import OptimConfig, build_optimizer, lr_factor
from softlabels.stores.atomic import atomic_file

__all__ = ["Student", "fit", "flatten_metrics"]

StepFn = Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]
EvalFn = Callable[[torch.nn.Module], dict[str, Any]]
Progress = Callable[[dict[str, Any]], None]


@dataclass
class Student:
    name: str
    model: torch.nn.Module
    optim: OptimConfig
    epochs: int
    step_fn: StepFn
    evaluate_fn: EvalFn | None = None
    out_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)  # resolved config, saved with state
    # runtime state
    optimizer: torch.optim.Optimizer | None = None
    epochs_done: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    diverged: dict[str, Any] | None = None
    extra_params: list[torch.nn.Parameter] = field(default_factory=list)

    def __post_init__(self) -> None:
        params = list(self.model.parameters()) + list(self.extra_params)
        self.optimizer = build_optimizer([p for p in params if p.requires_grad], self.optim)

    @property
    def active(self) -> bool:
        return self.diverged is None and self.epochs_done < self.epochs

    @property
    def state_path(self) -> Path | None:
        return self.out_dir / "state.pt" if self.out_dir else None

    def save_state(self) -> None:
        if self.state_path is None:
            return
        assert self.optimizer is not None
        state = {
            "epochs_done": self.epochs_done,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": json.dumps(self.history),
            "diverged": json.dumps(self.diverged),
            "config": json.dumps(self.config, sort_keys=True),
        }
        with atomic_file(self.state_path) as f:
            torch.save(state, f)

    def try_resume(self) -> bool:
        """Load the saved state when it exists and was made with the same config."""
        state = self.read_state()
        if state is None:
            return False
        self.load_state(state)
        return True

    def read_state(self) -> dict[str, Any] | None:
        """The saved state, when it exists and was made with the same config."""
        path = self.state_path
        if path is None or not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            saved_config = state["config"]
        except Exception as exc:  # any unreadable or foreign file: one line, not a traceback
            from softlabels.errors import UsageError

            raise UsageError(
                f"{path} is damaged or not a softlabels run state ({type(exc).__name__}); "
                "delete it to train that student from the start"
            ) from None
        if saved_config != json.dumps(self.config, sort_keys=True):
            return None
        return dict(state)

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a state of :meth:`read_state` (e.g. one rank 0 read and sent)."""
        self.model.load_state_dict(state["model"])
        assert self.optimizer is not None
        self.optimizer.load_state_dict(state["optimizer"])
        self.epochs_done = int(state["epochs_done"])
        self.history = json.loads(state["history"])
        self.diverged = json.loads(state["diverged"])


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """top1, ece and group accuracies as flat columns (per_class stays out)."""
    row: dict[str, Any] = {"top1": metrics.get("top1"), "ece": metrics.get("ece")}
    groups = metrics.get("groups") or {}
    for k, v in groups.items():
        row["group_definition" if k == "definition" else k] = v
    for k, v in metrics.items():
        if k not in ("top1", "ece", "groups", "per_class", "num_samples") and isinstance(
            v, int | float | str
        ):
            row[k] = v
    return row


def _finite_params(model: torch.nn.Module) -> bool:
    # One sync per epoch and student.
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _amp(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


class _Step(torch.nn.Module):
    """A student's whole step (forward and loss) as one module, so DistributedDataParallel
    sees every model call a method makes (``features``, ``heads``, experts ...)."""

    def __init__(self, model: torch.nn.Module, step_fn: StepFn) -> None:
        super().__init__()
        self.model = model
        self.step_fn = step_fn

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.step_fn(self.model, batch)


def _distributed(s: Student, device: torch.device) -> torch.nn.Module:
    """The student's step wrapped in DistributedDataParallel (parameters from rank 0)."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        # Batch statistics over the global batch, as one process would compute them.
        s.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(s.model)
    return DistributedDataParallel(
        _Step(s.model, s.step_fn),
        device_ids=[device.index] if device.type == "cuda" else None,
    )


def _average_grads(params: list[torch.nn.Parameter]) -> None:
    """Gradients of parameters outside the model (DDP does the model's)."""
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def _global_loss(loss: torch.Tensor, share: float) -> torch.Tensor:
    """The loss of the global batch: every rank's mean weighted by its share, summed."""
    import torch.distributed as dist

    total = loss.detach().float() * share
    dist.all_reduce(total)
    return total


def _step(
    s: Student,
    batch: Batch,
    global_step: int,
    steps_per_epoch: int,
    device: torch.device,
    ddp: torch.nn.Module | None,
    world: int,
) -> torch.Tensor | None:
    """One optimiser step of one student; its (global-batch) loss, or None if it diverged."""
    assert s.optimizer is not None
    factor = lr_factor(global_step, s.epochs * steps_per_epoch, steps_per_epoch, s.optim)
    for group in s.optimizer.param_groups:
        group["lr"] = s.optim.lr * factor
    with _amp(device):
        parts = ddp(batch) if ddp is not None else s.step_fn(s.model, batch)
    loss = parts["loss"]
    shown = loss.detach().float()
    if ddp is not None:
        # One all-reduce per step and student: every rank sees the global batch's
        # loss, so all decide alike whether it diverged.
        shown = _global_loss(loss, batch.share)
        # DDP averages gradients over ranks; weighting by share * world makes the
        # average the gradient of the global batch's mean loss.
        loss = loss * (batch.share * world)
    # Sync point: one bool per step and student, so divergence is caught at its step.
    if not bool(torch.isfinite(shown)):
        s.diverged = {"epoch": batch.epoch, "step": batch.step, "loss": str(float(shown))}
        return None
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if ddp is not None and s.extra_params:
        _average_grads(s.extra_params)
    s.optimizer.step()
    return shown


def _end_epoch(
    s: Student,
    epoch: int,
    mean_loss: float,
    seconds: float,
    steps_per_epoch: int,
    eval_every: int,
    main: bool,
) -> None:
    """Record a student's epoch (evaluated every ``eval_every`` epochs and at its last)."""
    if s.diverged is None and not _finite_params(s.model):
        # The last step's update overflowed although its loss was finite.
        s.diverged = {"epoch": epoch, "step": steps_per_epoch - 1, "loss": "non-finite weights"}
    if s.diverged is not None:
        if main:
            s.save_state()
        return
    s.epochs_done = epoch + 1
    row: dict[str, Any] = {
        "epoch": epoch + 1,
        "student": s.name,
        "loss": mean_loss,
        "lr": s.optimizer.param_groups[0]["lr"] if s.optimizer else math.nan,
        "seconds": seconds,
    }
    if (
        main
        and s.evaluate_fn is not None
        and (s.epochs_done % eval_every == 0 or s.epochs_done == s.epochs)
    ):
        metrics = s.evaluate_fn(s.model)
        row.update(flatten_metrics(metrics))
        row["_per_class"] = metrics.get("per_class")
    s.history.append(row)
    if main:
        s.save_state()


def fit(
    students: list[Student],
    stream: BatchStream,
    *,
    eval_every: int = 1,
    progress: Progress | None = None,
    on_epoch_end: Callable[[Student], None] | None = None,
) -> list[Student]:
    """Train every student for its epochs over the shared stream."""
    device = stream.device
    steps_per_epoch = stream.steps_per_epoch()
    world = stream.world
    main = stream.rank == 0  # the rank that evaluates and saves (the only one alone)
    for s in students:
        s.model.to(device)
        if device.type == "cuda":
            s.model.to(memory_format=torch.channels_last)
    ddp = {s.name: _distributed(s, device) for s in students} if world > 1 else {}
    last_epoch = max((s.epochs for s in students), default=0)
    first_epoch = min((s.epochs_done for s in students if s.active), default=last_epoch)
    for epoch in range(first_epoch, last_epoch):
        todo = [s for s in students if s.active and s.epochs_done == epoch]
        if not todo:
            continue
        t0 = time.perf_counter()
        sums = {s.name: torch.zeros((), device=device) for s in todo}
        counts = dict.fromkeys(sums, 0)
        for s in todo:
            s.model.train()
        for batch in stream.epoch(epoch):
            if device.type == "cuda" and batch.x.ndim == 4:
                batch.x = batch.x.contiguous(memory_format=torch.channels_last)
            global_step = epoch * steps_per_epoch + batch.step
            for s in todo:
                if s.diverged is not None:
                    continue
                shown = _step(
                    s, batch, global_step, steps_per_epoch, device, ddp.get(s.name), world
                )
                if shown is not None:
                    sums[s.name] += shown
                    counts[s.name] += 1
            if progress:
                progress(
                    {
                        "epoch": epoch,
                        "step": batch.step + 1,
                        "steps": steps_per_epoch,
                        "students": todo,
                    }
                )
        seconds = time.perf_counter() - t0
        for s in todo:
            mean = float(sums[s.name]) / max(1, counts[s.name])
            _end_epoch(s, epoch, mean, seconds, steps_per_epoch, eval_every, main)
            if on_epoch_end:
                on_epoch_end(s)
    return students
