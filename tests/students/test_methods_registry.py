"""The method registry: records, README table, plans and flags from the records, DKD."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from softlabels.cli.app import app
from softlabels.engine.inputs import Batch
from softlabels.errors import UsageError
from softlabels.losses import dkd_parts
from softlabels.students import StudentSpec, distill, parse_plan
from softlabels.students.methods import (
    Method,
    get_method,
    list_methods,
    method_table,
    option_kinds,
    register_method,
)
from softlabels.students.steps import make_step

ROOT = Path(__file__).resolve().parents[2]
DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"
ALL = ["bkd", "bsce", "cbd", "ce", "dive", "dkd", "ecl", "kd", "ldam", "ssd"]


def test_every_method_is_registered_with_a_loss_and_valid_defaults() -> None:
    assert list_methods() == ALL
    for name in list_methods():
        m = get_method(name)
        assert callable(m.loss_fn) and m.loss_fn.__name__ == name
        for opt in m.options:  # every default passes its own check
            if opt.default is not None:
                assert opt.parse(opt.default, "(default)") == opt.default
        assert m.resolve({}, "(test)") == m.defaults


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_method(Method(name="kd", summary="", loss="x:y", step=lambda ctx: None))


def test_readme_method_table_is_made_from_the_records() -> None:
    text = (ROOT / "README.md").read_text()
    found = re.search(
        r"<!-- methods table: .*? -->\n(.*?)\n<!-- end of methods table -->", text, re.S
    )
    assert found, "the README has no generated methods table"
    assert found.group(1).strip() == method_table()


def test_no_code_outside_the_registry_asks_which_method_it_is() -> None:
    # (a calibration's method, lws/crt/tau-norm, is another kind of thing)
    pattern = re.compile(r"(?<!calibration)\.method\s*(==|!=|in\s*\()|hasattr\([^)]*hard_head")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for folder in ("softlabels", "cli", "stores")
        for p in (ROOT / folder).rglob("*.py")
        if "students/methods" not in p.as_posix()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_options_are_checked_once_when_the_spec_is_built() -> None:
    with pytest.raises(UsageError, match=r"tau is a .*option, not one of method ce"):
        StudentSpec("s", method="ce", tau=3.0)
    with pytest.raises(UsageError, match="Expected kd_warmup >= 0"):
        StudentSpec("s", method="dkd", kd_warmup=-1)
    with pytest.raises(UsageError, match="Expected beta >= 0"):
        StudentSpec("s", method="dkd", beta=-1.0)
    with pytest.raises(UsageError, match="Expected beta in \\[0, 1\\)"):
        StudentSpec("s", method="bkd", beta=8.0)  # the same name, each method its own check
    spec = StudentSpec("s", method="dkd", beta=2)
    assert spec.options == {"beta": 2.0} and spec.beta == 2.0 and spec.tau is None
    assert StudentSpec(**spec.to_dict()) == spec


def test_plan_defaults_apply_to_the_methods_that_have_the_option() -> None:
    doc = {
        "defaults": {"tau": 2.0, "kd_warmup": 3, "epochs": 1},
        "student": [
            {"name": "ce", "method": "ce"},
            {"name": "kd", "method": "kd"},
            {"name": "dkd", "method": "dkd", "beta": 4.0},
        ],
    }
    ce, kd, dkd = parse_plan(doc)
    assert ce.options == {} and kd.options == {"tau": 2.0}
    assert dkd.options == {"tau": 2.0, "kd_warmup": 3, "beta": 4.0}
    bad = {"student": [{"name": "ce", "method": "ce", "tau": 2.0}]}
    with pytest.raises(UsageError, match="not one of method ce"):
        parse_plan(bad)


def test_cli_has_one_flag_per_option_of_every_method() -> None:
    result = CliRunner().invoke(app, ["distill", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for key in option_kinds():
        assert "--" + key.replace("_", "-") in result.output, key
    listed = CliRunner().invoke(app, ["methods", "--json"])
    assert [d["name"] for d in json.loads(listed.stdout)] == ALL


def _batch(epoch: int, n: int = 8, c: int = 10) -> Batch:
    g = torch.Generator().manual_seed(epoch)
    return Batch(
        epoch=epoch,
        step=0,
        rows=np.arange(n),
        x=torch.randn(n, c, generator=g),
        y=torch.arange(n) % c,
        view=np.zeros(n, np.int64),
    )


class _Targets:
    def __init__(self, z: torch.Tensor) -> None:
        self.z = z

    def batch_logits(self, batch: Batch) -> torch.Tensor:
        return self.z[torch.as_tensor(batch.rows)]


@pytest.mark.parametrize("epoch", [0, 1, 3, 7])
def test_dkd_step_ramps_the_kd_terms_from_the_first_epoch(epoch: int) -> None:
    warmup, c = 4, 10
    spec = StudentSpec("d", method="dkd", kd_warmup=warmup, alpha=0.5, beta=3.0)
    hp = get_method("dkd").resolve(spec.options, "")
    zt = torch.randn(8, c, generator=torch.Generator().manual_seed(9)) * 3
    step = make_step(spec, hp, torch.full((c,), 5), _Targets(zt))
    model = torch.nn.Identity()
    batch = _batch(epoch)
    got = step(model, batch)["loss"].item()
    tckd, nckd = dkd_parts(batch.x, zt, batch.y, 4.0)
    factor = min(1.0, (epoch + 1) / warmup)  # 1-based epochs / warm-up, as the reference
    want = F.cross_entropy(batch.x, batch.y).item() + factor * (0.5 * tckd + 3.0 * nckd).item()
    assert math.isclose(got, want, rel_tol=1e-5)


def test_dkd_trains_from_flags_and_from_a_plan(cache_views: str, tmp_path: Path) -> None:
    flags = [
        "distill", cache_views, "--dataset", DATA, "--out", str(tmp_path / "flags"),
        "--device", "cpu", "--epochs", "2", "--method", "dkd", "--teacher", "bsce",
        "--kd-warmup", "2", "--beta", "4", "--json", "--no-plots",
    ]  # fmt: skip
    result = CliRunner().invoke(app, flags)
    assert result.exit_code == 0, result.output
    student = json.loads(result.stdout)["students"][0]
    assert student["method"] == "dkd" and student["status"] == "ok"
    assert student["hparams"] == {
        "tau": 4.0, "alpha": 1.0, "beta": 4.0, "ce_weight": 1.0, "kd_warmup": 2
    }  # fmt: skip
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[defaults]\nepochs = 2\n[[student]]\nname = "dkd"\nmethod = "dkd"\n'
        'teacher = "bsce"\nkd_warmup = 2\nbeta = 4.0\n'
    )
    res = distill(
        cache_views,
        DATA,
        parse_plan(__import__("tomllib").loads(plan.read_text())),
        tmp_path / "plan",
        device="cpu",
        plots=False,
        evaluate_teachers=False,
    )
    via_plan = torch.load(tmp_path / "plan" / "dkd" / "model.pt", weights_only=True)
    via_flags = torch.load(tmp_path / "flags" / "student" / "model.pt", weights_only=True)
    assert res.students[0]["top1"] == student["top1"]
    assert all(
        torch.equal(via_plan["state_dict"][k], v) for k, v in via_flags["state_dict"].items()
    )
    bad = CliRunner().invoke(app, [*flags[:-2], "--mixup", "0.2"])
    assert bad.exit_code == 2 and "mixup is a BKD option" in bad.stderr
