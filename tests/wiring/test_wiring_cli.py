"""Every command is reachable through the real application (``softlabels.cli.app.app``, as
``python -m softlabels`` and the ``softlabels`` script run it), and the SSD chain runs end to
end through it: train (rotation SSL) -> dump -> inspect -> verify -> tune-tau -> calibrate
(LWS) -> distill (SSD with the final LWS) -> eval of the student."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from softlabels_wiring_helpers import DATA

# Each command with an option only its own help shows.
COMMANDS = {
    "train": "--ssl",
    "eval": "--per-class",
    "dump": "--views",
    "inspect": "--json",
    "verify": "--dataset",
    "tune-tau": "--taus",
    "calibrate": "--tau-norm-power",
    "distill": "--final-lws",
    "methods": "--json",
    "report": "--by",
}


def _listed(text: str) -> set[str]:
    """Command names of a top-level help text: the first word of each line of the commands
    panel (``│ name   description``)."""
    found = (re.match(r"^[│|]?\s*([a-z][a-z-]*)\s{2,}\S", line) for line in text.splitlines())
    return {m.group(1) for m in found if m}


def test_top_level_help_lists_every_command(cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0, result.stderr
    assert _listed(result.stdout) == set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_its_help(command: str, cli) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage:" in result.stdout and command in result.stdout
    assert COMMANDS[command] in result.stdout, result.stdout


def test_python_dash_m_and_the_script_reach_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "softlabels", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert proc.returncode == 0, proc.stderr
    assert _listed(proc.stdout) == set(COMMANDS)
    proc = subprocess.run(
        [sys.executable, "-m", "softlabels", "calibrate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "--method" in proc.stdout, proc.stderr
    script = Path(sys.executable).with_name("softlabels")
    if script.exists():  # the console script of the installed package
        proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and _listed(proc.stdout) == set(COMMANDS), proc.stderr


def _json(result: Any) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return json.loads(result.stdout)


def _sane(metrics: dict[str, Any], *keys: str) -> None:
    """top1, ece and the given group accuracies are finite numbers in [0, 1]."""
    for key in ("top1", "ece", *keys):
        value = metrics[key]
        assert isinstance(value, float) and math.isfinite(value) and 0 <= value <= 1, (key, value)


def test_ssd_chain_end_to_end(cli, tmp_path: Path) -> None:
    teacher_dir, cache, run = tmp_path / "teacher", tmp_path / "c.slc", tmp_path / "ssd"

    # Stage I: a teacher with the rotation head.
    train = [
        "train", "--dataset", DATA, "--model", "cnn1d", "--ssl", "rotation", "--epochs", 2,
        "--batch-size", 32, "--lr", 0.05, "--device", "cpu", "--out", teacher_dir, "--json",
    ]  # fmt: skip
    trained = _json(cli(*train))
    _sane(trained["metrics"], "head", "middle", "tail")
    assert trained["epochs"] == 2
    for name in ("model.pt", "config.json", "metrics.parquet"):
        assert (teacher_dir / name).is_file(), name
    assert json.loads((teacher_dir / "config.json").read_text())["ssl"] == "rotation"
    state = torch.load(teacher_dir / "model.pt", map_location="cpu", weights_only=True)
    assert "ssl_head.weight" in state["state_dict"]

    dump = [
        "dump", "--dataset", DATA, "--teacher", f"ssd={teacher_dir / 'model.pt'}",
        "--views", 2, "--chunk-size", 64, "--device", "cpu", "--out", cache, "--json",
    ]  # fmt: skip
    dumped = _json(cli(*dump))
    assert dumped["status"] == "created" and dumped["num_views"] == 2
    assert dumped["teachers"] == ["ssd"] and dumped["chunks_written"] == dumped["chunks_total"]

    info = _json(cli("inspect", cache, "--json"))
    assert (info["N"], info["C"], info["V"], info["complete"]) == (159, 10, 2, True)
    assert [t["name"] for t in info["teachers"]] == ["ssd"]
    assert info["teachers"][0]["features_shape"] == [159, 2, 128]

    report = _json(cli("verify", cache, "--dataset", DATA, "--json"))
    assert report["ok"] is True and report["problems"] == [] and report["fingerprint"]["match"]

    tuned = _json(cli("tune-tau", cache, "--teacher", "ssd", "--taus", "1:4:1", "--json"))
    assert tuned["teacher"] == "ssd" and len(tuned["grid"]) == 4 * 2  # 4 taus x 2 powers
    assert _json(cli("inspect", cache, "--json"))["tune_tau"] is not None  # the choice is stored

    # Stage II: LWS on the cached features, stored as teacher ssd+lws.
    calibrated = _json(
        cli("calibrate", cache, "--teacher", "ssd", "--method", "lws", "--epochs", 2, "--json")
    )
    assert calibrated["teacher"] == "ssd+lws" and calibrated["num_views"] == 2
    assert all(math.isfinite(x) for x in calibrated["losses"]) and len(calibrated["losses"]) == 2
    assert all(math.isfinite(v) and v > 0 for v in calibrated["lws_scale"].values())
    for side in ("before", "after"):
        _sane(calibrated["evaluation"][side], "balanced")
    info = _json(cli("inspect", cache, "--json"))
    by_name = {t["name"]: t for t in info["teachers"]}
    assert set(by_name) == {"ssd", "ssd+lws"}
    assert by_name["ssd+lws"]["calibration"] is not None and by_name["ssd"]["calibration"] is None
    assert _json(cli("verify", cache, "--dataset", DATA, "--json"))["ok"] is True

    # Stages III and IV: the two-head student, then LWS on its hard head.
    distill = [
        "distill", cache, "--dataset", DATA, "--out", run, "--method", "ssd",
        "--teacher", "ssd+lws", "--final-lws", "--model", "cnn1d", "--epochs", 2,
        "--batch-size", 32, "--device", "cpu", "--json",
    ]  # fmt: skip
    summary = _json(cli(*distill))
    (student,) = summary["students"]
    assert student["status"] == "ok" and student["epochs"] == 2
    assert student["teacher"] == "ssd+lws" and student["views"] == "replay"
    _sane(student, "head", "middle", "tail")
    _sane(student["hard_lws"], "head", "middle", "tail")
    scale = student["hard_lws"]["lws_scale"]
    assert len(scale) == 10 and all(math.isfinite(s) and s > 0 for s in scale)
    assert json.loads((run / "student" / "final_lws.json").read_text()) == student["hard_lws"]
    assert [t["name"] for t in summary["teachers"]] == ["ssd+lws"]
    assert summary["teachers"][0]["status"] == "ok"
    _sane(summary["teachers"][0])
    for name in ("metrics.parquet", "per_class.parquet", "summary.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "summary.json").read_text()) == summary
    rows = pq.read_table(run / "metrics.parquet").to_pylist()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and 0 <= r["hard_top1"] <= 1 for r in rows)

    # The student's checkpoint evaluates to what distill reported (the soft head).
    evaluated = _json(
        cli(
            "eval", "--dataset", DATA, "--model", student["model_path"], "--device", "cpu", "--json"
        )
    )
    assert evaluated["top1"] == pytest.approx(student["top1"])
    assert evaluated["ece"] == pytest.approx(student["ece"])
