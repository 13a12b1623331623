"""The teacher in the loop (``distill --online``): the reference a cache is measured against.

The teacher model recorded by the dump (or one given) runs in eval mode, in float32, on
exactly the inputs of each student batch, once per batch however many students share the
pass. A calibrated teacher's features go through its calibrated final layer, as in its
cached outputs.
"""

from __future__ import annotations

from typing import Any

import torch

from softlabels.engine.inputs import Batch

__all__ = ["OnlineTeacher", "load_online_teacher"]


class OnlineTeacher:
    """A teacher evaluated on each batch; the same interface as cached targets."""

    def __init__(self, name: str, model: Any, head: Any = None) -> None:
        self.name = name
        self.model = model  # a LoadedModel
        self.head = head
        self._batch: Batch | None = None  # the batch of the outputs held (kept alive)
        self._out: tuple[torch.Tensor, torch.Tensor | None] = (torch.empty(0), None)

    @property
    def feature_dim(self) -> int | None:
        return self.model.arch.get("feature_dim")

    def _forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        if batch is not self._batch:
            with torch.inference_mode(), torch.autocast(batch.x.device.type, enabled=False):
                z, feats = self.model.forward(batch.x.float())
                if self.head is not None:
                    z = self.head(feats.float())
            self._out = (z.float().clone(), None if feats is None else feats.float().clone())
            self._batch = batch
        return self._out

    def batch_logits(self, batch: Batch) -> torch.Tensor:
        return self._forward(batch)[0]

    def batch_features(self, batch: Batch) -> torch.Tensor:
        feats = self._forward(batch)[1]
        if feats is None:
            raise ValueError(f"teacher {self.name!r} gives no features")
        return feats


def load_online_teacher(
    cache: Any, name: str, ds: Any, device: torch.device, model: str | None = None
) -> OnlineTeacher:
    """The teacher ``name`` of ``cache`` as a model (its recorded spec, or ``model``)."""
    from softlabels.errors import UsageError
    from softlabels.models import load_model

    info = cache.teacher(name).info
    spec = model or info.model
    if not spec:
        raise UsageError(
            f"teacher {name!r} of {cache.url} records no model; give --teacher-model {name}=MODEL"
        )
    calibrated = bool(info.calibration)
    loaded = load_model(
        str(spec),
        num_classes=ds.num_classes,
        in_channels=int(ds.input_shape[0]),
        device=str(device),
        with_features=True,
    )
    head = None
    if calibrated:
        from softlabels.calibration import stored_classifier

        head = stored_classifier(cache, name).to(device)
    return OnlineTeacher(name, loaded, head)
