"""The CLI as a new user meets it: --json on every command (keys as the README lists
them), --quiet keeping results only, a distill table that fits 80 columns."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from softlabels_ecosystem_helpers import DATA, ROOT
from typer.testing import CliRunner, Result

from softlabels.cli.app import app
from softlabels.cli.distill_cmds import render_summary

QUIET = ("train", "eval", "dump", "tune-tau", "calibrate", "distill")
GROUPS = {"absolute": ("many", "medium", "few"), "thirds": ("head", "middle", "tail")}


def _invoke(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, views_cache: str, teacher_path: Path
) -> dict[str, dict[str, Result]]:
    """Every command once with --quiet (real work) and once with --json, by command."""
    tmp = tmp_path_factory.mktemp("eco-cli")
    cache = tmp / "cache.slc"
    shutil.copytree(views_cache, cache)  # calibrate writes into it
    train = ["train", "--dataset", DATA, "--model", "mlp", "--epochs", "1", "--out", tmp / "tr"]
    student = ["--method", "kd", "--model", "mlp", "--epochs", "1", "--teacher", "t", "--no-plots"]
    commands = {
        "train": train,
        "eval": ["eval", "--dataset", DATA, "--model", teacher_path],
        "dump": ["dump", "--dataset", DATA, "--teacher", f"t={teacher_path}", "--out"],
        "inspect": ["inspect", cache],
        "verify": ["verify", cache, "--dataset", DATA],
        "tune-tau": ["tune-tau", cache, "--teacher", "t", "--dry-run", "--taus", "1,2,4"],
        "calibrate": ["calibrate", cache, "--teacher", "t", "--method", "lws", "--epochs", "1"],
        "distill": ["distill", cache, "--dataset", DATA, "--out", tmp / "students", *student],
        "methods": ["methods"],
    }
    out: dict[str, dict[str, Result]] = {}
    for name, args in commands.items():
        out[name] = {}
        for mode in ("--quiet", "--json"):
            if mode == "--quiet" and name not in QUIET:
                continue
            extra = [tmp / f"dump{mode}.slc"] if name == "dump" else []
            extra += ["--overwrite"] if name == "calibrate" and mode == "--json" else []
            out[name][mode] = _invoke(*args, *extra, mode)
    out["report"] = {"--json": _invoke("report", tmp / "students", "--json")}
    out["eval"]["plain"] = _invoke(*commands["eval"])  # the notes --quiet leaves out
    out["tune-tau"]["plain"] = _invoke(*commands["tune-tau"])
    return out


def _documented_keys() -> dict[str, tuple[set[str], set[str]]]:
    """The README's JSON table: command -> (keys always there, optional keys)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("| command | JSON keys |")
    table: dict[str, tuple[set[str], set[str]]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        command, keys = (c.strip() for c in line.strip("|").split("|"))
        required, _, optional = keys.partition("optional:")
        table[command.strip("`")] = (_top_level(required), _top_level(optional))
    return table


def _top_level(text: str) -> set[str]:
    """The backticked keys of a README cell, leaving out what parentheses say of them."""
    return set(re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", text)))


def test_every_command_prints_json_with_the_documented_keys(
    runs: dict[str, dict[str, Result]],
) -> None:
    documented = _documented_keys()
    assert set(documented) == set(runs)
    for name, (required, optional) in documented.items():
        result = runs[name]["--json"]
        assert result.exit_code == 0, (name, result.stderr)
        data = json.loads(result.stdout)  # stdout is the JSON document alone
        item = data[0] if isinstance(data, list) else data
        if "<groups>" in required:
            definition = "thirds" if "head" in item else "absolute"
            required = (required - {"<groups>"}) | set(GROUPS[definition])
        got = set(item)
        assert required <= got <= required | optional, (name, got ^ required)


def test_quiet_keeps_results_only(runs: dict[str, dict[str, Result]]) -> None:
    for name in QUIET:
        result = runs[name]["--quiet"]
        assert result.exit_code == 0, (name, result.stderr)
        assert result.stderr == "", (name, result.stderr)  # no progress bar, no notes
        assert result.stdout.strip(), name  # the result is there
        assert "groups: relative thirds" not in result.stdout, name
    # The same commands without --quiet: a progress bar and notes (this test can fail).
    plain_eval = runs["eval"]["plain"].stdout
    assert "groups: relative thirds" in plain_eval
    assert plain_eval.splitlines()[:6] == runs["eval"]["--quiet"].stdout.splitlines()[:6]
    plain_tune = runs["tune-tau"]["plain"]
    assert "tune-tau" in plain_tune.stderr and "dry run" in plain_tune.stderr
    assert "choice: T = " in runs["tune-tau"]["--quiet"].stdout
    assert "student" in runs["distill"]["--quiet"].stdout  # the summary table


def _demo_summary(result: dict[str, Any]) -> dict[str, Any]:
    """A real distill summary with the rows of `make demo` (names, teachers, a teacher
    without its model, a diverged student, a long name)."""
    s0 = result["students"][0]
    t0 = result["teachers"][0]
    teachers = [dict(t0, name=n) for n in ("ce", "bsce", "ssd", "cbd1", "cbd2")]
    teachers.append({"name": "ssd+lws", "model": "x", "status": "model not available"})
    plan = [("ce", "ce", None), ("bsce", "bsce", None), ("kd", "kd", "ce"), ("dive", "dive", "bsce"),
            ("bkd", "bkd", "ce"), ("cbd", "cbd", "cbd1"), ("ssd", "ssd", "ssd+lws"),
            ("ecl", "ecl", "bsce"), ("dive-t2-power-half", "dive", "bsce")]  # fmt: skip
    students = [dict(s0, name=n, method=m, teacher=t) for n, m, t in plan]
    students[4] = dict(students[4], status="diverged", top1=None)
    return dict(result, teachers=teachers, students=students, out="demo-runs/students")


def _render(result: dict[str, Any], width: int, **kw: Any) -> list[str]:
    buf = io.StringIO()
    render_summary(result, console=Console(file=buf, width=width, highlight=False), **kw)
    return buf.getvalue().splitlines()


def test_the_distill_table_fits_80_columns(runs: dict[str, dict[str, Result]]) -> None:
    result = _demo_summary(json.loads(runs["distill"]["--json"].stdout))
    groups = GROUPS[result["groups_definition"]]
    lines = _render(result, 80)
    assert max(len(ln) for ln in lines) <= 80, "\n".join(lines)
    header = next(ln for ln in lines if ln.startswith("run "))
    assert header.split()[:3] == ["run", "method", "top-1"] and "ECE" not in header
    rows = [(f"teacher {t['name']}", t) for t in result["teachers"]]
    rows += [(s["name"], s) for s in result["students"]]
    for label, row in rows:  # each row whole on one line: name, method, numbers, status
        found = [ln for ln in lines if ln.startswith(label + " ")]
        assert len(found) == 1, (label, lines)
        top1 = "-" if row.get("top1") is None else f"{100 * row['top1']:.2f}"
        assert f" {top1} " in found[0], found[0]
        status = {"model not available": "no model"}.get(row["status"], row["status"])
        assert found[0].rstrip().endswith(status), found[0]
    # --wide: the students' teachers and ECE, the full status, as wide as it needs.
    wide = _render(result, 80, wide=True)
    head = next(ln for ln in wide if ln.startswith("run "))
    assert {"teacher", "ECE", groups[1]} <= set(head.split())
    kd = next(ln for ln in wide if ln.startswith("kd "))
    assert kd.split()[1:3] == ["kd", "ce"]
    assert any(ln.rstrip().endswith("model not available") for ln in wide)
