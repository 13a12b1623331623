"""examples/own_loop.py: a plain PyTorch loop over a cache, and the student distill trains."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
from softlabels_ecosystem_helpers import DATA, EXAMPLE, run_python

from softlabels.students import StudentSpec, distill


def test_the_example_runs_as_documented(views_cache: str) -> None:
    args = ["--cache", views_cache, "--dataset", DATA, "--teacher", "t", "--epochs", "1"]
    done = run_python(str(EXAMPLE), *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("epoch 1: last loss ") and len(lines) == 2, done.stdout
    assert lines[1].startswith("balanced top-1 ") and "head" in lines[1], done.stdout


@pytest.mark.parametrize("which", ["views_cache", "mixed_cache"])
def test_the_loop_trains_the_student_distill_trains(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same seeds, batch size and settings: the same weights, to the bit (CPU), with the
    loop's DataLoader in two worker processes; on a cache of mixed views too (the loop
    gets the mixed input, both labels and lam)."""
    views_cache = request.getfixturevalue(which)
    seed, epochs, batch = 2, 3, 32  # 3 epochs over 2 views: view 0 is replayed twice
    spec = StudentSpec(
        "kd",
        method="kd",
        teacher="t",
        model="mlp",
        epochs=epochs,
        batch_size=batch,
        lr=0.05,
        schedule="constant",
        seed=seed,
        tau=4.0,
        alpha=0.9,
    )
    run = tmp_path / "run"
    quick = {"device": "cpu", "plots": False, "evaluate_teachers": False}
    result = distill(views_cache, DATA, [spec], run, **quick)
    saved = tmp_path / "own.pt"
    args = ["--cache", views_cache, "--dataset", DATA, "--teacher", "t", "--seed", str(seed)]
    args += ["--epochs", str(epochs), "--batch-size", str(batch), "--workers", "2"]
    runpy.run_path(str(EXAMPLE))["main"]([*args, "--save", str(saved)])
    printed = capsys.readouterr().out
    ours = torch.load(saved, weights_only=True)
    theirs = torch.load(run / "kd" / "model.pt", weights_only=True)["state_dict"]
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert f"balanced top-1 {100 * result.students[0]['top1']:.2f} %" in printed
