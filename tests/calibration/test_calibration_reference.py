"""Calibration defaults follow the reference code; the record says where a fit differs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import softlabels


def test_defaults_and_keep_bias_through_the_cli(cache: Path, cli) -> None:
    lws = cli("calibrate", str(cache), "--teacher", "a", "--method", "lws", "--epochs", "1",
              "--json")  # fmt: skip
    assert lws.exit_code == 0, lws.output
    assert json.loads(lws.stdout)["lr"] == 0.2  # the reference's LWS learning rate
    drop = cli("calibrate", str(cache), "--teacher", "a", "--method", "tau-norm", "--json")
    assert drop.exit_code == 0, drop.output
    c = softlabels.open_cache(str(cache))
    assert c.teacher("a+lws").info.calibration.differs_from_reference == ()
    cal = c.teacher("a+tau-norm").info.calibration
    assert cal.keep_bias is False and cal.differs_from_reference == ()
    assert not np.asarray(c.teacher("a+tau-norm").classifier[1]).any()  # bias dropped
    keep = cli("calibrate", str(cache), "--teacher", "a", "--method", "tau-norm", "--keep-bias",
               "--overwrite", "--json")  # fmt: skip
    assert keep.exit_code == 0, keep.output
    c = softlabels.open_cache(str(cache))
    cal = c.teacher("a+tau-norm").info.calibration
    assert cal.keep_bias is True and cal.differs_from_reference == (
        "bias kept (reference: dropped)",
    )
    np.testing.assert_array_equal(
        np.asarray(c.teacher("a+tau-norm").classifier[1]), np.asarray(c.teacher("a").classifier[1])
    )
