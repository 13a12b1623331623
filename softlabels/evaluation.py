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
    part = ds.split(split)
    outs = []
    with torch.inference_mode():
        for start in range(0, len(part), batch_size):
            rows = np.arange(start, min(len(part), start + batch_size))
            z, feats = lm.forward(ds.clean(part.load(rows).to(device)))
            if head is not None:
                z = head(feats.float())
            outs.append(z.float().cpu())  # sync: one per batch
    return torch.cat(outs).numpy() if outs else np.zeros((0, ds.num_classes), np.float32)


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
    from softlabels.errors import UsageError
    from softlabels.metrics import evaluate_logits
    from softlabels.models import load_model
    from softlabels.teachers.dump import resolve_device

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
