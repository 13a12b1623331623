"""``softlabels tune-tau``: JSON and table output, the stored choice, plots, user errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from softlabels_analysis_helpers import PNG, cli_app
from typer.testing import CliRunner, Result

from softlabels.errors import CacheLockedError, CacheNotFoundError
from softlabels.stores._fs import resolve
from softlabels.stores.cache import Cache, update_meta
from softlabels.stores.lock import CacheLock

GRID_KEYS = {"tau", "power", "tau_eff", "ratio_tail_head", "entropy", "max_min", "per_class"}


@pytest.fixture
def cli() -> Callable[..., Result]:
    runner = CliRunner()
    the_app = cli_app()

    def invoke(*args: Any) -> Result:
        return runner.invoke(the_app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def test_json_output_and_stored_choice(cli: Callable[..., Result], lt_cache: Path) -> None:
    res = cli("tune-tau", lt_cache, "--teacher", "a", "--json", "--device", "cpu")
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["teacher"] == "a" and data["groups"] == "absolute" and data["plots"] == []
    assert len(data["grid"]) == 38 and set(data["grid"][0]) >= GRID_KEYS
    assert len(data["grid"][0]["per_class"]) == 12
    choice = data["choice"]
    assert {"tau", "power", "tau_eff", "reason"} <= set(choice)
    chosen = [(g["tau"], g["power"], g["tau_eff"]) for g in data["grid"] if g["chosen"]]
    assert chosen == [(choice["tau"], choice["power"], choice["tau_eff"])]
    stored = Cache(str(lt_cache)).meta["tune_tau"]
    assert stored["teacher"] == "a" and stored["groups"] == "absolute"
    assert stored["choice"] == {k: choice[k] for k in ("tau", "power", "tau_eff", "reason")}
    assert stored["taus"] == [1 + 0.5 * i for i in range(19)] and stored["powers"] == [1, 0.5]
    assert Cache(str(lt_cache)).verify() == []  # the attribute update leaves the cache sound


def test_table_dry_run_ensemble_and_plots(
    cli: Callable[..., Result], lt_cache: Path, tmp_path: Path
) -> None:
    res = cli(
        "tune-tau", lt_cache, "--ensemble", "a,b", "--taus", "1,2,4,8", "--powers", "1",
        "--dry-run", "--plots", tmp_path / "plots", "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "tune-tau: teacher a+b" in res.stdout and res.stdout.count("◀") >= 1
    assert "choice: T =" in res.stdout and "not stored" in res.stderr
    assert Cache(str(lt_cache)).meta["tune_tau"] is None
    for name in ("tune_tau_per_class.png", "tune_tau_groups.png", "tune_tau_ratio.png"):
        path = tmp_path / "plots" / name
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 2000
        assert f"plot: {path}" in res.stdout.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--taus", "0:2:1"], "--taus"),
        (["--taus", "-1,2"], "--taus"),
        (["--taus", "1:2"], "START:STOP:STEP"),
        (["--powers", "1.5"], "--powers"),
        (["--powers", "0"], "--powers"),
        (["--teacher", "nope"], "(a, b), got 'nope'"),
        (["--ensemble", "a,nope"], "got 'nope'"),
        (["--ensemble", "a"], "two or more"),
        (["--teacher", "a", "--ensemble", "a,b"], "got both"),
        ([], "--teacher NAME"),
        (["--teacher", "a", "--groups", "quartiles"], "quartiles"),
        (["--teacher", "a", "--device", "tpu"], "--device"),
    ],
)
def test_user_errors_one_line_exit_2(
    cli: Callable[..., Result], lt_reference: Path, args: list[str], words: str
) -> None:
    res = cli("tune-tau", lt_reference, *args, "--dry-run")
    assert words in one_error_line(res)


def test_missing_cache_and_locked_cache(
    cli: Callable[..., Result], lt_cache: Path, tmp_path: Path
) -> None:
    assert "does not exist" in one_error_line(cli("tune-tau", tmp_path / "none.slc"))
    assert not (tmp_path / "none.slc").exists()
    with CacheLock(resolve(str(lt_cache)), owner="dump"):
        res = cli("tune-tau", lt_cache, "--teacher", "a", "--taus", "2")
        assert "being written" in one_error_line(res)
        assert "tune-tau" not in res.stderr  # refused before the pass, not after it
    assert Cache(str(lt_cache)).meta["tune_tau"] is None


def test_update_meta_changes_one_key_under_the_lock(lt_cache: Path) -> None:
    before = Cache(str(lt_cache)).meta
    after = update_meta(str(lt_cache), "tune_tau", {"choice": {"tau": 2}})
    assert after == before | {"tune_tau": {"choice": {"tau": 2}}}
    assert Cache(str(lt_cache)).meta == after
    assert not (lt_cache / ".softlabels.lock").exists()
    with CacheLock(resolve(str(lt_cache))), pytest.raises(CacheLockedError):
        update_meta(str(lt_cache), "tune_tau", None)
    with pytest.raises(CacheNotFoundError):
        update_meta(str(lt_cache.parent / "none.slc"), "tune_tau", None)
    assert not (lt_cache.parent / "none.slc").exists()


def test_read_only_cache_needs_dry_run(
    cli: Callable[..., Result], lt_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softlabels.stores import _local_lock

    def refuse(path: str) -> tuple[int, bool]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_local_lock, "_open_lock_file", refuse)
    line = one_error_line(cli("tune-tau", lt_cache, "--teacher", "a", "--taus", "2"))
    assert "not writable (Permission denied); use --dry-run" in line
    res = cli("tune-tau", lt_cache, "--teacher", "a", "--taus", "2", "--dry-run", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["stored"] is False
