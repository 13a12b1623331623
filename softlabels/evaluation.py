"""``softlabels eval``: balanced top-1, per-class and group accuracies and ECE of a model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["evaluate_model", "model_logits"]


def model_logits(
    lm: Any,
    ds: Any,
    split: str = "test",
    *,
    device: torch.device,
    batch_size: int = 512,
    head: Any = None,
) -> np.ndarray:
    """Logits ([N, C] float32) of a loaded model on a split's clean inputs; with ``head``,
    the model's features go through that final layer instead (a calibrated teacher)."""
    from softlabels.engine.inputs import clean_outputs

    def forward(x: torch.Tensor) -> torch.Tensor:
        z, feats = lm.forward(x)
        return z if head is None else head(feats.float())

    out = clean_outputs(ds, split, forward, device=device, batch_size=batch_size)
    return out.numpy() if len(out) else np.zeros((0, ds.num_classes), np.float32)


def evaluate_model(
    dataset: str,
    model: str,
    *,
    split: str = "test",
    groups: str = "auto",
    device: str = "auto",
    batch_size: int = 512,
) -> dict[str, Any]:
    """Evaluate the model spec ``model`` on ``dataset``'s split (clean inputs)."""
    from softlabels.data import load_dataset
    from softlabels.device import resolve_device
    from softlabels.errors import UsageError
    from softlabels.metrics import evaluate_logits
    from softlabels.models import load_model

    if batch_size < 1:
        raise UsageError(f"Expected --batch-size >= 1, got {batch_size}")
    dev = resolve_device(device)
    ds = load_dataset(dataset)
    part = ds.split(split)
    lm = load_model(
        model,
        num_classes=ds.num_classes,
        in_channels=int(ds.input_shape[0]),
        device=str(dev),
        with_features=False,
    )
    logits_np = model_logits(lm, ds, split, device=dev, batch_size=batch_size)
    result = evaluate_logits(logits_np, part.labels, ds.class_counts("train"), groups=groups)
    result.update(
        {
            "dataset": ds.spec,
            "model": model,
            "split": split,
            "class_names": ds.class_names,
            "train_counts": ds.class_counts("train").tolist(),
        }
    )
    return result
