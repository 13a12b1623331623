"""The benchmark runner's arguments and plan (``make bench``); nothing is timed or run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import run_all


def _names(benches: list[run_all.Bench]) -> list[str]:
    return [b.name for b in benches]


def test_quick_by_default_full_by_flag_or_environment() -> None:
    assert not run_all.parse_args([], {}).full
    assert run_all.parse_args(["--full"], {}).full
    for value in ("1", "true", "YES", " on "):
        assert run_all.parse_args([], {"BENCH_FULL": value}).full
    for value in ("", "0", "no", "false"):
        assert not run_all.parse_args([], {"BENCH_FULL": value}).full


def test_quick_mode_leaves_out_benchmarks_without_a_quick_setting() -> None:
    quick = _names(run_all.selected(run_all.parse_args([], {})))
    full = _names(run_all.selected(run_all.parse_args(["--full"], {})))
    assert full == [b.name for b in run_all.BENCHES]
    without_quick = {b.name for b in run_all.BENCHES if b.quick is None}
    assert without_quick and not without_quick & set(quick)
    assert set(quick) | without_quick == set(full)
    # every figure the README names has a quick setting
    assert {"dump", "dump-views8", "distill", "tune-tau", "topk"} <= set(quick)


def test_only_and_skip_pick_names_in_registry_order() -> None:
    args = run_all.parse_args(["--only", "topk, dump", "--skip", "topk"], {})
    assert _names(run_all.selected(args)) == ["dump"]
    args = run_all.parse_args(["--only", "tune-tau,dump"], {})
    assert _names(run_all.selected(args)) == ["dump", "tune-tau"]


@pytest.mark.parametrize("argv", [["--only", "dump,nope"], ["--skip", "x"], ["--timeout", "0"]])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        run_all.parse_args(argv, {})
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "Expected" in err


def test_commands_use_the_mode_and_the_scratch_folder(tmp_path: Path) -> None:
    bench = run_all.BY_NAME["tune-tau"]
    quick = run_all.command(bench, False, tmp_path)
    full = run_all.command(bench, True, tmp_path)
    assert quick is not None and full is not None
    assert quick[:2] == [sys.executable, str(run_all.HERE / "bench_tune_tau.py")]
    assert "--n" in quick and "--n" not in full
    assert f"{tmp_path}/tune-tau.slc" in quick and f"{tmp_path}/tune-tau.slc" in full
    assert run_all.command(run_all.BY_NAME["fault-injection"], False, tmp_path) is None
    for b in run_all.BENCHES:  # every script exists and every placeholder is filled
        assert (run_all.HERE / b.script).is_file()
        for full_mode in (False, True):
            cmd = run_all.command(b, full_mode, tmp_path)
            assert cmd is None or not any("{" in a for a in cmd)


def test_list_prints_the_plan_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "res"
    assert run_all.main(["--list", "--only", "dump,fault-injection", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "bench_dump.py --repeats" in text and "(full mode only)" in text
    assert not out.exists()


def test_results_are_the_last_json_document_printed() -> None:
    assert run_all.last_json('progress\n{"a": 1}\nmore\n{"b": {"c": 2.5}}\n') == {"b": {"c": 2.5}}
    assert run_all.last_json('table\n{\n  "n": 3,\n  "pass": {"seconds": 1.5}\n}\n') == {
        "n": 3,
        "pass": {"seconds": 1.5},
    }
    assert run_all.last_json("no json here\n") is None
    result = {"ratio": 1.2, "summary": {"cpu": {"kd_ratio": 1.01, "x": 3}}, "lst": [1]}
    assert run_all.headline(result, ("ratio", "summary.cpu.*ratio*", "missing", "lst")) == [
        ("ratio", 1.2),
        ("summary.cpu.kd_ratio", 1.01),
    ]


def test_quick_datasets_are_valid_specs() -> None:
    from softlabels.data import load_dataset

    specs = {
        b.quick[i + 1]
        for b in run_all.BENCHES
        if b.quick is not None
        for i, a in enumerate(b.quick)
        if a == "--dataset"
    }
    assert specs
    for spec in specs:
        assert len(load_dataset(spec).train) > 0
