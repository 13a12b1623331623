"""Replayed view <-> teacher target: each student step trains on the target of the very view
it replays.

The student *is* the teacher (same BN-free ``mlp``, same init seed) and learns with a
negligible learning rate, so its output on any input is the teacher's output on that input.
With KD at ``alpha = 1`` (pure ``T^2 KL(teacher target || student)``) the loss is 0 exactly
when every target is the teacher's output on the replayed input, i.e. the cached logits of
the replayed (row, view); a target from another view of the same row gives a loss > 0.
Which (row, view) each step replayed is read off the inputs themselves (a global forward
pre-hook; nothing in softlabels is patched).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from softlabels_wiring_helpers import (
    CLASSES,
    DATA,
    SEED,
    SIGNAL,
    TINY_LR,
    identify,
    losses,
    replay_table,
    state_dict,
    training_inputs,
)

import softlabels
from softlabels.models import create_model
from softlabels.students import StudentSpec, distill

EPOCHS = 3
BATCH = 32  # 159 rows: 4 full batches per epoch


def _teacher(path: Path) -> torch.nn.Module:
    model = create_model("mlp", num_classes=CLASSES, in_channels=1, in_features=SIGNAL)
    model.load_state_dict(state_dict(path))
    return model.eval()


def _kl_rows(target_logits: np.ndarray, student_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(target) || softmax(student)) of each row, in float64 (T = 1)."""

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    lq, lp = log_softmax(target_logits.astype(np.float64)), log_softmax(student_logits)
    return (np.exp(lq) * (lq - lp)).sum(axis=1)


def test_each_step_trains_on_the_target_of_its_replayed_view(
    views_cache: str, mlp_teacher: Path, tmp_path: Path
) -> None:
    cache = softlabels.open_cache(views_cache)
    cached = np.asarray(cache.teacher("t").logits[...], dtype=np.float64)  # [N, V, C]
    table, views = replay_table(views_cache)
    assert views == 3
    n = cache.num_samples
    # Premise: the views of a row are different inputs with different teacher outputs.
    per_row = table.reshape(n, views, -1)
    assert (per_row[:, 1:] - per_row[:, :1]).abs().amax(dim=-1).min() > 1e-3
    assert _kl_rows(cached[:, 0], cached[:, 1]).mean() > 1e-4

    spec = StudentSpec(
        name="same",
        model="mlp",
        method="kd",
        teacher="t",
        tau=1.0,
        alpha=1.0,
        lr=TINY_LR,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=SEED,
    )
    out = tmp_path / "run"
    with training_inputs() as seen:
        result = distill(
            views_cache, DATA, [spec], out, device="cpu", plots=False, evaluate_teachers=False
        )
    assert result.students[0]["views"] == "replay"
    # Premise: the student started as the teacher and stayed it.
    teacher = _teacher(mlp_teacher)
    student = state_dict(out / "same" / "model.pt")
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(student[key], value, atol=1e-6, rtol=0)

    steps = n // BATCH
    assert len(seen) == EPOCHS * steps, "one recorded input per student step"
    replayed = identify(seen, table, views)
    all_views = np.concatenate([v for _, v in replayed])
    # Every view is replayed, not only view 0 (each about a third of the time).
    shares = np.bincount(all_views, minlength=views) / len(all_views)
    assert shares.min() > 0.2, shares

    # The teacher on the exact replayed input gives the cached logits of that (row, view).
    with torch.no_grad():
        outputs = [teacher(x.reshape(-1, 1, SIGNAL)).double().numpy() for x in seen]
    for z, (rows, v) in zip(outputs, replayed, strict=True):
        np.testing.assert_allclose(z, cached[rows, v], atol=1e-4, rtol=0)

    # Every step's target was that one: KL 0; the target of view 0 would not have been.
    recorded = losses(out / "metrics.parquet", "same")
    assert len(recorded) == EPOCHS
    for epoch in range(EPOCHS):
        part = slice(epoch * steps, (epoch + 1) * steps)
        view0 = np.mean(
            [
                _kl_rows(cached[rows, 0], z).mean()
                for z, (rows, _) in zip(outputs[part], replayed[part], strict=True)
            ]
        )
        if any((v != 0).any() for _, v in replayed[part]):  # (epoch 0 replays view 0)
            assert view0 > 1e-4  # what a view-0 target would have cost this epoch
        assert recorded[epoch] < 1e-8, (
            f"epoch {epoch + 1}: KD loss {recorded[epoch]:.3g} with the student equal to the "
            f"teacher: the targets are not those of the replayed views (a view-0 target "
            f"costs {view0:.3g})"
        )
