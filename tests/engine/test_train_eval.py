"""`softlabels train` and `softlabels eval`: determinism, resume, divergence, bad flags."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from softlabels.cli.app import app
from softlabels.engine.loop import Student
from softlabels.engine.optim import OptimConfig
from softlabels.errors import DivergedError
from softlabels.teachers.train import TrainConfig, train

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"


def _cfg(**kw) -> TrainConfig:
    base = {
        "dataset": DATA,
        "model": "cnn1d",
        "loss": "bsce",
        "epochs": 3,
        "batch_size": 32,
        "optim": OptimConfig(lr=0.05),
    }
    return TrainConfig(**(base | kw))


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_identical_runs_give_identical_weights(tmp_path) -> None:
    r1 = train(_cfg(), tmp_path / "a", device="cpu")
    r2 = train(_cfg(), tmp_path / "b", device="cpu")
    assert _same(_weights(r1.model_path), _weights(r2.model_path))
    assert r1.metrics["top1"] == r2.metrics["top1"]
    r3 = train(_cfg(seed=1), tmp_path / "c", device="cpu")
    assert not _same(_weights(r1.model_path), _weights(r3.model_path))


def test_resume_after_interruption_gives_same_weights(tmp_path, monkeypatch) -> None:
    full = train(_cfg(), tmp_path / "full", device="cpu")
    calls = {"n": 0}
    real = Student.save_state

    def crash_after_two(self: Student) -> None:
        real(self)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Student, "save_state", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "cut", device="cpu")
    monkeypatch.setattr(Student, "save_state", real)
    resumed = train(_cfg(), tmp_path / "cut", device="cpu")
    assert resumed.resumed_from == 2
    assert _same(_weights(full.model_path), _weights(resumed.model_path))


def test_outputs_and_loadable_as_teacher(tmp_path) -> None:
    res = train(
        _cfg(
            epochs=2,
            ssl="rotation",
            classifier="cosine",
            sampler="class-balanced",
            augment="strong",
        ),
        tmp_path / "t",
        device="cpu",
    )
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "t" / "metrics.parquet")
    assert table.num_rows == 2 and {"epoch", "loss", "top1", "many", "few", "ece"} <= set(
        table.column_names
    )
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["ssl"] == "rotation" and config["classifier"] == "cosine"
    runner = CliRunner()
    out = runner.invoke(
        app, ["eval", "--dataset", DATA, "--model", res.model_path, "--json", "--device", "cpu"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert {"top1", "per_class", "groups", "ece"} <= set(data)
    assert data["top1"] == pytest.approx(res.metrics["top1"])
    # 40 ... 4 training samples per class: no class has more than 100, so relative thirds.
    assert data["groups"]["definition"] == "thirds"
    assert data["groups"]["head"] == pytest.approx(res.metrics["head"])


def test_divergence_names_epoch_and_step(tmp_path) -> None:
    with pytest.raises(DivergedError, match=r"epoch 1, step \d+"):
        train(_cfg(optim=OptimConfig(lr=1e12, momentum=0.0)), tmp_path / "d", device="cpu")
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--dataset",
            DATA,
            "--model",
            "cnn1d",
            "--epochs",
            "2",
            "--lr",
            "1e12",
            "--momentum",
            "0",
            "--out",
            str(tmp_path / "e"),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 1
    assert "diverged" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    "flags",
    [
        ["--loss", "focal"],
        ["--sampler", "balanced"],
        ["--epochs", "0"],
        ["--lr", "-1"],
        ["--classifier", "arc"],
        ["--augment", "heavy"],
        ["--ssl", "jigsaw"],
        ["--model", "resnet1000"],
        ["--dataset", "mnist2d-lt"],
        ["--dataset", "mnist1d-lt:imb=abc"],
        ["--batch-size", "x"],
        ["--device", "cuda:7"],
        ["--optimizer", "lbfgs"],
    ],
)
def test_bad_train_flags_one_line_exit_2(tmp_path, flags: list[str]) -> None:
    args = {"--dataset": DATA, "--model": "cnn1d", "--epochs": "1", "--out": str(tmp_path / "x")}
    for k, v in zip(flags[::2], flags[1::2], strict=True):
        args[k] = v
    argv = ["train", *[x for kv in args.items() for x in kv]]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "flags", [["--model", "/no/such/model.pt"], ["--groups", "quarters"], ["--split", "val"]]
)
def test_bad_eval_flags(flags: list[str]) -> None:
    args = {"--dataset": DATA, "--model": "cnn1d"}
    for k, v in zip(flags[::2], flags[1::2], strict=True):
        args[k] = v
    result = CliRunner().invoke(app, ["eval", *[x for kv in args.items() for x in kv]])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
