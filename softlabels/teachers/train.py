"""``softlabels train``: train a teacher (CE, BSCE or LDAM; optional rotation SSL).

Runs on the shared engine (samplers, schedules, seeded batched augmentation, resume,
divergence detection) that ``softlabels distill`` uses for students.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from softlabels.engine.optim import OptimConfig
from softlabels.errors import DivergedError, UsageError
from softlabels.stores.atomic import atomic_file

__all__ = ["TEACHER_LOSSES", "TrainConfig", "TrainResult", "train"]

TEACHER_LOSSES = ("ce", "bsce", "ldam")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    model: str
    loss: str = "ce"
    ssl: str | None = None  # None or "rotation"
    ssl_weight: float = 1.0
    classifier: str = "linear"
    cosine_scale: float = 20.0
    sampler: str = "instance"
    augment: str = "standard"  # standard | strong | none
    epochs: int = 30
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    eval_every: int = 1

    def __post_init__(self) -> None:
        from softlabels.engine.samplers import SAMPLERS

        if self.loss not in TEACHER_LOSSES:
            raise UsageError(
                f"Expected --loss among {', '.join(TEACHER_LOSSES)}, got {self.loss!r}"
            )
        if self.ssl not in (None, "rotation"):
            raise UsageError(f"Expected --ssl rotation (or none), got {self.ssl!r}")
        if self.classifier not in ("linear", "cosine"):
            raise UsageError(f"Expected --classifier linear or cosine, got {self.classifier!r}")
        if self.sampler not in SAMPLERS:
            raise UsageError(
                f"Expected --sampler among {', '.join(SAMPLERS)}, got {self.sampler!r}"
            )
        if self.augment not in ("standard", "strong", "none"):
            raise UsageError(f"Expected --augment standard, strong or none, got {self.augment!r}")
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise UsageError(
                    f"Expected --{name.replace('_', '-')} >= 1, got {getattr(self, name)}"
                )
        if self.seed < 0:
            raise UsageError(f"Expected --seed >= 0, got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optim"] = self.optim.to_dict()
        return d


@dataclass
class TrainResult:
    out: str
    model_path: str
    epochs: int
    seconds: float
    metrics: dict[str, Any]
    resumed_from: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _step_fn(config: TrainConfig, counts: torch.Tensor) -> Callable[..., dict[str, torch.Tensor]]:
    from softlabels.engine.ssl import rotate
    from softlabels.losses import get_loss

    loss_fn = get_loss(config.loss).fn

    def step(model: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        feats = model.features(batch.x)
        logits = model.fc(feats)
        sup = loss_fn(student_logits=logits.float(), labels=batch.y, class_counts=counts)
        parts = {"loss": sup, "sup": sup.detach()}
        if config.ssl == "rotation":
            xr, k = rotate(batch.x)
            ssl = F.cross_entropy(model.ssl_head(model.features(xr)).float(), k)
            parts["loss"] = sup + config.ssl_weight * ssl
            parts["ssl"] = ssl.detach()
        return parts

    return step


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    device: str = "auto",
    workers: int = 2,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train one teacher; write ``out/model.pt``, ``config.json`` and ``metrics.parquet``."""
    from softlabels.data import load_dataset
    from softlabels.device import resolve_device
    from softlabels.engine.inputs import BatchStream, predict
    from softlabels.engine.loop import Student, fit
    from softlabels.engine.samplers import make_sampler
    from softlabels.metrics import evaluate_logits
    from softlabels.models import create_model, save_checkpoint, shape_kwargs

    t0 = time.perf_counter()
    dev = resolve_device(device)
    out = Path(out)
    ds = load_dataset(config.dataset)
    counts_np = ds.class_counts("train")
    in_channels = int(ds.input_shape[0])
    kw = shape_kwargs(config.model, tuple(ds.input_shape))
    model = create_model(
        config.model,
        num_classes=ds.num_classes,
        in_channels=in_channels,
        classifier=config.classifier,
        cosine_scale=config.cosine_scale,
        ssl_head=config.ssl,
        seed=config.seed,
        **kw,
    )
    counts = torch.as_tensor(counts_np, device=dev)
    resolved = config.to_dict() | {"dataset_spec": ds.spec, "fingerprint": ds.train.fingerprint()}

    def evaluate(m: torch.nn.Module) -> dict[str, Any]:
        logits = predict(m, ds, "test", device=dev)
        return evaluate_logits(logits, ds.test.labels, counts_np)

    student = Student(
        name="teacher",
        model=model.to(dev),
        optim=config.optim,
        epochs=config.epochs,
        step_fn=_step_fn(config, counts),
        evaluate_fn=evaluate,
        out_dir=out,
        config=resolved,
    )
    student.try_resume()
    resumed_from = student.epochs_done
    sampler = make_sampler(config.sampler, ds.train.labels, ds.num_classes, config.seed)
    stream = BatchStream(
        ds,
        sampler,
        batch_size=config.batch_size,
        device=dev,
        augment=config.augment != "none",
        strength="standard" if config.augment == "none" else config.augment,
        seed=config.seed,
        workers=workers,
    )
    fit([student], stream, eval_every=config.eval_every, progress=progress)
    if student.diverged is not None:
        d = student.diverged
        raise DivergedError(
            f"training diverged: loss {d['loss']} at epoch {d['epoch'] + 1}, step {d['step']}; "
            "lower --lr or check the data (checkpoints up to the previous epoch are kept)"
        )
    final = student.history[-1] if student.history else {}
    metrics = {k: v for k, v in final.items() if not k.startswith("_")}
    save_checkpoint(
        out / "model.pt",
        model,
        extra={"config": json.dumps(resolved, sort_keys=True), "metrics": json.dumps(metrics)},
    )
    (out / "config.json").write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")
    _write_metrics(out / "metrics.parquet", student.history)
    return TrainResult(
        out=str(out),
        model_path=str(out / "model.pt"),
        epochs=student.epochs_done,
        seconds=time.perf_counter() - t0,
        metrics=metrics | {"per_class": final.get("_per_class")},
        resumed_from=resumed_from,
    )


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in history]
    table = pa.Table.from_pylist(rows)
    with atomic_file(path) as f:
        pq.write_table(table, f)
