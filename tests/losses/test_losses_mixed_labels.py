"""Mixed labels in the losses: per-sample ``lam CE(y_i) + (1 - lam) CE(y_j)``, batch mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softlabels.losses import MixedLabels, bsce, ce, dkd, hard_ce, kd, ldam


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _data(seed: int = 0) -> tuple[torch.Tensor, MixedLabels]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(9, 6, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 6, (9,), generator=g)
    yj = torch.randint(0, 6, (9,), generator=g)
    lam = torch.rand(9, generator=g, dtype=torch.float64)
    return z, MixedLabels(y, yj, lam)


def test_hard_ce_is_the_per_sample_lam_mix_computed_in_numpy() -> None:
    z, labels = _data()
    lp = _log_softmax(z.numpy())
    rows = np.arange(9)
    lam = labels.lam.numpy()
    want = -(lam * lp[rows, labels.labels.numpy()] + (1 - lam) * lp[rows, labels.partner.numpy()])
    assert float(hard_ce(z, labels)) == pytest.approx(want.mean(), rel=1e-12)
    assert float(ce(student_logits=z, labels=labels)) == pytest.approx(want.mean(), rel=1e-12)


def test_plain_labels_give_the_bits_of_cross_entropy() -> None:
    z, labels = _data(1)
    assert torch.equal(
        hard_ce(z.float(), labels.labels),
        torch.nn.functional.cross_entropy(z.float(), labels.labels),
    )


@pytest.mark.parametrize("name", ["bsce", "ldam", "kd", "dkd"])
def test_a_mixed_batch_is_the_mean_of_its_rows_mixed_one_by_one(name: str) -> None:
    """Row by row (batches of one), lam L(y_i) + (1 - lam) L(y_j); the batch: their mean."""
    z, labels = _data(2)
    t = torch.randn(9, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    counts = torch.tensor([50, 20, 10, 5, 3, 2])
    fns = {
        "bsce": lambda zz, tt, yy: bsce(student_logits=zz, labels=yy, class_counts=counts),
        "ldam": lambda zz, tt, yy: ldam(student_logits=zz, labels=yy, class_counts=counts),
        "kd": lambda zz, tt, yy: kd(student_logits=zz, teacher_logits=tt, labels=yy, alpha=0.3),
        "dkd": lambda zz, tt, yy: dkd(student_logits=zz, teacher_logits=tt, labels=yy),
    }
    fn = fns[name]
    per_row = [
        float(labels.lam[b]) * float(fn(z[b : b + 1], t[b : b + 1], labels.labels[b : b + 1]))
        + (1 - float(labels.lam[b]))
        * float(fn(z[b : b + 1], t[b : b + 1], labels.partner[b : b + 1]))
        for b in range(9)
    ]
    assert float(fn(z, t, labels)) == pytest.approx(
        np.mean(per_row), rel=1e-6
    )  # dkd runs in float32


@pytest.mark.parametrize("name", ["kd", "dive", "bkd", "ssd", "dkd"])
def test_the_fused_op_s_gradient_on_mixed_labels_is_the_rows_mixed_one_by_one(name: str) -> None:
    """The fused tempered KL takes the CE of mixed labels inside the op (hand-written
    backward): its gradient must be, row by row, lam grad L(y_i) + (1 - lam) grad L(y_j),
    each from plain labels, divided by the batch."""
    from softlabels.losses import bkd, dive, ssd

    z, labels = _data(3)
    t = torch.randn(9, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    counts = torch.tensor([50, 20, 10, 5, 3, 2])
    fns = {
        "kd": lambda zz, tt, yy: kd(student_logits=zz, teacher_logits=tt, labels=yy, alpha=0.3),
        "dive": lambda zz, tt, yy: dive(
            student_logits=zz, teacher_logits=tt, labels=yy, class_counts=counts, alpha=0.5
        ),
        "bkd": lambda zz, tt, yy: bkd(
            student_logits=zz, teacher_logits=tt, labels=yy, class_counts=counts
        ),
        "ssd": lambda zz, tt, yy: ssd(
            student_logits=zz, hard_logits=zz * 0.5, teacher_logits=tt, labels=yy
        ),
        "dkd": lambda zz, tt, yy: dkd(student_logits=zz, teacher_logits=tt, labels=yy),
    }
    fn = fns[name]

    def grad(zz: torch.Tensor, tt: torch.Tensor, yy: object) -> torch.Tensor:
        zz = zz.detach().clone().requires_grad_(True)
        fn(zz, tt, yy).backward()
        return zz.grad

    got = grad(z, t, labels)
    for b in range(9):
        row = slice(b, b + 1)
        lam = float(labels.lam[b])
        want = lam * grad(z[row], t[row], labels.labels[row]) + (1 - lam) * grad(
            z[row], t[row], labels.partner[row]
        )
        assert torch.allclose(got[b : b + 1] * 9, want, rtol=1e-4, atol=1e-6), (name, b)
