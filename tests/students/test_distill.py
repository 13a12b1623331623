"""`softlabels distill`: shared passes, resume, tau auto, fingerprints, outputs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from softlabels.cli.app import app
from softlabels.engine.loop import Student
from softlabels.errors import FingerprintMismatchError, UsageError
from softlabels.students import StudentSpec, distill, parse_plan
from softlabels.students.steps import resolve_hparams

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"


def _w(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _spec(name: str, method: str, **kw) -> StudentSpec:
    return StudentSpec(
        name=name, method=method, model="cnn1d", epochs=2, batch_size=32, data_seed=0, **kw
    )


def test_students_in_one_pass_equal_students_trained_alone(
    cache_views: str, tmp_path: Path
) -> None:
    specs = [
        _spec("ce", "ce", seed=1),
        _spec("kd", "kd", teacher="bsce", seed=2),
        _spec("dive", "dive", teacher="bsce", tau=2.0, seed=3),
        _spec("bkd", "bkd", teacher="bsce", mixup=0.2, drw_epoch=1, seed=4),
    ]
    together = distill(
        cache_views,
        DATA,
        specs,
        tmp_path / "all",
        device="cpu",
        plots=False,
        evaluate_teachers=False,
    )
    assert together.passes == 1
    for spec in specs:
        alone = distill(
            cache_views,
            DATA,
            [spec],
            tmp_path / spec.name,
            device="cpu",
            plots=False,
            evaluate_teachers=False,
        )
        assert _same(
            _w(tmp_path / "all" / spec.name / "model.pt"),
            _w(tmp_path / spec.name / spec.name / "model.pt"),
        ), spec.name
        assert (
            alone.students[0]["top1"]
            == next(s for s in together.students if s["name"] == spec.name)["top1"]
        )


def test_different_data_seeds_make_separate_passes(cache_clean: str, tmp_path: Path) -> None:
    specs = [
        StudentSpec(name="a", method="ce", epochs=1, seed=0),
        StudentSpec(name="b", method="ce", epochs=1, seed=1),
    ]
    res = distill(
        cache_clean, DATA, specs, tmp_path / "r", device="cpu", plots=False, evaluate_teachers=False
    )
    assert res.passes == 2
    assert {s["views"] for s in res.students} == {"own"}


def test_outputs(cache_views: str, tmp_path: Path) -> None:
    res = distill(
        cache_views,
        DATA,
        [_spec("kd", "kd", teacher="bsce"), _spec("bsce", "bsce")],
        tmp_path / "o",
        device="cpu",
    )
    out = tmp_path / "o"
    metrics = pq.read_table(out / "metrics.parquet").to_pylist()
    assert {(r["student"], r["epoch"]) for r in metrics} == {
        ("kd", 1),
        ("kd", 2),
        ("bsce", 1),
        ("bsce", 2),
    }
    per_class = pq.read_table(out / "per_class.parquet").to_pylist()
    assert len(per_class) == 2 * 10 and {
        "student",
        "class_id",
        "train_count",
        "group",
        "accuracy",
    } <= set(per_class[0])
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["students"]] == ["kd", "bsce"]
    assert summary["teachers"][0]["name"] == "bsce" and summary["teachers"][0]["status"] == "ok"
    for f in ("per_class.png", "groups.png"):
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ev = CliRunner().invoke(
        app,
        [
            "eval",
            "--dataset",
            DATA,
            "--model",
            str(out / "kd" / "model.pt"),
            "--json",
            "--device",
            "cpu",
        ],
    )
    assert ev.exit_code == 0 and json.loads(ev.stdout)["top1"] == pytest.approx(
        res.students[0]["top1"]
    )


def test_resume_gives_same_weights(
    cache_views: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec("kd", "kd", teacher="bsce")
    spec = StudentSpec(**(spec.to_dict() | {"epochs": 3}))
    distill(
        cache_views,
        DATA,
        [spec],
        tmp_path / "full",
        device="cpu",
        plots=False,
        evaluate_teachers=False,
    )
    real = Student.save_state
    calls = {"n": 0}

    def crash(self: Student) -> None:
        real(self)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(Student, "save_state", crash)
    with pytest.raises(KeyboardInterrupt):
        distill(
            cache_views,
            DATA,
            [spec],
            tmp_path / "cut",
            device="cpu",
            plots=False,
            evaluate_teachers=False,
        )
    monkeypatch.setattr(Student, "save_state", real)
    distill(
        cache_views,
        DATA,
        [spec],
        tmp_path / "cut",
        device="cpu",
        plots=False,
        evaluate_teachers=False,
    )
    assert _same(
        _w(tmp_path / "full" / "kd" / "model.pt"), _w(tmp_path / "cut" / "kd" / "model.pt")
    )


def test_tau_auto_reads_the_tune_tau_choice() -> None:
    spec = StudentSpec(name="d", method="dive", tau="auto")
    hp = resolve_hparams(spec, {"choice": {"tau": 2.5, "power": 0.5, "tau_eff": 5.0}})
    assert hp["tau"] == 2.5 and hp["power"] == 0.5
    kd = resolve_hparams(
        StudentSpec(name="k", method="kd", tau="auto"), {"choice": {"tau": 4.0, "power": 1.0}}
    )
    assert kd["tau"] == 4.0 and "power" not in kd
    with pytest.raises(UsageError, match="tune-tau"):
        resolve_hparams(spec, None)


def test_fingerprint_mismatch_stops_before_training(cache_views: str, tmp_path: Path) -> None:
    with pytest.raises(FingerprintMismatchError, match="fingerprint"):
        distill(
            cache_views,
            "mnist1d-lt:imb=10,n_max=41,n_test=6",
            [_spec("a", "ce")],
            tmp_path / "x",
            device="cpu",
        )
    assert not (tmp_path / "x" / "a").exists()


PLAN_OK = """
[defaults]
model = "cnn1d"
epochs = 1
data_seed = 0

[[student]]
name = "kd"
method = "kd"
teacher = "bsce"
tau = 4

[[student]]
name = "ce"
method = "ce"
"""


def test_plan_parsing() -> None:
    import tomllib

    specs = parse_plan(tomllib.loads(PLAN_OK))
    assert [s.name for s in specs] == ["kd", "ce"] and specs[0].tau == 4.0 and specs[1].epochs == 1


@pytest.mark.parametrize(
    ("plan", "match"),
    [
        (PLAN_OK.replace('method = "ce"', 'method = "focal"'), "method"),
        (PLAN_OK.replace("tau = 4", "temperature = 4"), "Unknown key 'temperature'"),
        (PLAN_OK.replace("tau = 4", "tau = -1"), "tau > 0"),
        (PLAN_OK.replace("tau = 4", 'tau = "hot"'), "auto"),
        (PLAN_OK.replace('name = "ce"', 'name = "kd"'), "duplicates"),
        (PLAN_OK.replace("epochs = 1", 'epochs = "one"'), "epochs"),
        (PLAN_OK.replace("[defaults]", "[default]"), "Unknown table"),
        ("[defaults]\nepochs = 1\n", "at least one"),
        (PLAN_OK + "\n[[student]]\nmethod = 'ce'\n", "name"),
        (PLAN_OK.replace("tau = 4", "alpha = 1.5"), r"alpha in \[0, 1\]"),
        (PLAN_OK + "\n[[student]]\nname='m'\nmethod='kd'\nmixup=0.2\n", "BKD option"),
        ("this is [ not toml", "not valid TOML"),
    ],
)
def test_bad_plans_one_line_exit_2(cache_clean: str, tmp_path: Path, plan: str, match: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(plan)
    result = CliRunner().invoke(
        app,
        [
            "distill",
            cache_clean,
            "--dataset",
            DATA,
            "--plan",
            str(path),
            "--out",
            str(tmp_path / "o"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    import re

    assert re.search(match, lines[0]), lines[0]


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--method", "kd", "--teacher", "nobody"], "nobody"),
        (["--method", "kd"], "needs teacher"),
        (["--method", "dive", "--teacher", "bsce", "--tau", "auto"], "tune-tau"),
        (["--method", "kd", "--teacher", "bsce", "--tau", "0"], "tau > 0"),
        (["--method", "kd", "--teacher", "bsce", "--alpha", "2"], "alpha"),
        (["--model", "cnn1d"], "--method"),
        (["--method", "ce", "--dataset", "digits-lt"], "fingerprint"),
    ],
)
def test_bad_flags_one_line_exit_2(
    cache_clean: str, tmp_path: Path, flags: list[str], match: str
) -> None:
    args = [
        "distill",
        cache_clean,
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
        "--epochs",
        "1",
    ]
    if "--dataset" not in flags:
        args += ["--dataset", DATA]
    result = CliRunner().invoke(app, args + flags)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], result.stderr
