"""`--tau auto` uses the tune-tau result of the student's own teacher, or refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softlabels.caches import open_cache
from softlabels.cli.app import app
from softlabels.errors import UsageError
from softlabels.students import StudentSpec, distill

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"


def _tune(cache: str, teacher: str, taus: str) -> dict:
    result = CliRunner().invoke(
        app, ["tune-tau", cache, "--teacher", teacher, "--taus", taus, "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_teacher_keeps_its_own_choice(cache_views: str, tmp_path: Path) -> None:
    cache = str(tmp_path / "c.slc")
    shutil.copytree(cache_views, cache)
    spec = StudentSpec("d", method="dive", teacher="rnd", tau="auto", epochs=1)
    with pytest.raises(UsageError, match="no tune-tau choice for teacher 'rnd'"):
        distill(cache, DATA, [spec], tmp_path / "r0", device="cpu")
    _tune(cache, "bsce", "1:4:1")
    with pytest.raises(UsageError, match=r"for teacher 'rnd' \(the cache has one for bsce\)"):
        distill(cache, DATA, [spec], tmp_path / "r1", device="cpu")
    _tune(cache, "rnd", "7,8")  # the latest result is rnd's; bsce's stays bsce's
    opened = open_cache(cache)
    bsce, rnd = opened.tune_tau_for("bsce"), opened.tune_tau_for("rnd")
    assert bsce is not None and rnd is not None and opened.tune_tau.teacher == "rnd"
    assert rnd.choice.tau in (7.0, 8.0, 3.5, 4.0) and bsce.taus == (1.0, 2.0, 3.0, 4.0)
    specs = [
        StudentSpec("on-bsce", method="dive", teacher="bsce", tau="auto", epochs=1),
        StudentSpec("on-rnd", method="kd", teacher="rnd", tau="auto", epochs=1),
    ]
    res = distill(cache, DATA, specs, tmp_path / "r2", device="cpu", plots=False,
                  evaluate_teachers=False)  # fmt: skip
    got = {s["name"]: s["hparams"]["tau"] for s in res.students}
    assert got == {"on-bsce": bsce.choice.tau, "on-rnd": rnd.choice.tau}
