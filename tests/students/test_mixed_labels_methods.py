"""Every method's hard labels on mixed views: ``lam loss(y_i) + (1 - lam) loss(y_j)``.

The step of every registered method is run on one batch three ways: plain labels y; mixed
labels with lam = 1 (must be the plain loss); mixed labels with lam = 0 and partner labels
y' (must be the plain loss of a batch labelled y'). A method that reads ``batch.y`` where
the labels enter, instead of ``batch.labels``, fails the lam = 0 case.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softlabels.data.mixing import Mix
from softlabels.engine.inputs import Batch
from softlabels.students import StudentSpec
from softlabels.students.methods import ModelRequest, get_method, list_methods
from softlabels.students.steps import make_step

C, B, D, L = 10, 12, 16, 40


class _Targets:
    """Cached-target stand-in: fixed logits and features per row."""

    def __init__(self, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.z = torch.randn(B, C, generator=g) * 2
        self.h = torch.randn(B, D, generator=g)
        self.feature_dim = D

    def batch_logits(self, batch: Batch) -> torch.Tensor:
        return self.z[torch.as_tensor(batch.rows)]

    def batch_features(self, batch: Batch) -> torch.Tensor:
        return self.h[torch.as_tensor(batch.rows)]


def _batch(y: torch.Tensor, mix: Mix | None = None, partner_y: torch.Tensor | None = None) -> Batch:
    x = torch.randn(B, 1, L, generator=torch.Generator().manual_seed(3))
    return Batch(
        epoch=5, step=0, rows=np.arange(B), x=x, y=y, view=np.zeros(B, np.int64),
        mix=mix, partner_y=partner_y,
    )  # fmt: skip


def _loss(method: str, batch: Batch) -> float:
    m = get_method(method)
    extra = {"teachers": ["t"]} if m.feature_teachers else {}
    spec = StudentSpec("s", method=method, model="mlp", **extra)
    hp = m.resolve(spec.options, "")
    request = ModelRequest(
        model="mlp", classifier="linear", num_classes=C, input_shape=(1, L), seed=0,
        options=hp, feature_dim=D if m.feature_teachers else 0,
    )  # fmt: skip
    model = m.model(request)
    model.train()
    targets = _Targets(1)
    logit = targets if m.teacher != "none" else None
    feats = [targets] if m.feature_teachers else []
    counts = torch.as_tensor([40, 30, 23, 18, 14, 11, 8, 6, 5, 4])
    step = make_step(spec, hp, counts, logit, feats)
    torch.manual_seed(0)
    return float(step(model, batch)["loss"].detach())


@pytest.mark.parametrize("method", list_methods())
def test_hard_labels_of_mixed_views_count_by_lam(method: str) -> None:
    y = torch.arange(B) % C
    other = (y * 3 + 1) % C
    assert (other != y).all()
    none = np.full((B, 4), -1, np.int32)
    partner = np.arange(B, dtype=np.int32)[::-1].copy()
    ones = Mix(partner, np.ones(B, np.float32), none)
    zeros = Mix(partner, np.zeros(B, np.float32), none)
    plain = _loss(method, _batch(y))
    relabelled = _loss(method, _batch(other))
    assert abs(plain - relabelled) > 1e-4  # premise: the labels matter to this method
    assert _loss(method, _batch(y, ones, other)) == pytest.approx(plain, rel=1e-6, abs=1e-6)
    assert _loss(method, _batch(y, zeros, other)) == pytest.approx(relabelled, rel=1e-6, abs=1e-6)
