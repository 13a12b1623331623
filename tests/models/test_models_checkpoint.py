"""Checkpoints: round trip, weights_only loading, atomic writes, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from softlabels.errors import SpecError, UsageError
from softlabels.models import checkpoint as ckpt_mod
from softlabels.models import create_model, load_checkpoint, save_checkpoint
from softlabels.models.checkpoint import unwrap_model


def _trained_like(name: str = "resnet20", **kw: object) -> nn.Module:
    model = create_model(name, num_classes=5, in_channels=3, seed=0, **kw)  # type: ignore[arg-type]
    with torch.no_grad():  # make BN buffers non-default so they must round-trip too
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_round_trip_and_weights_only(tmp_path: Path) -> None:
    model = _trained_like(classifier="cosine", cosine_scale=12.5, ssl_head="rotation")
    extra = {
        "epoch": 3,
        "metrics": {"acc": 0.5, "per_class": [0.1, 0.9]},
        "note": None,
        "ema": torch.ones(2),
        "flags": (True, False),
    }
    path = save_checkpoint(
        tmp_path / "t1" / "model.pt", model, arch=model.arch_config(), extra=extra
    )
    assert path == tmp_path / "t1" / "model.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "softlabels-model" and raw["version"] == 1
    assert raw["num_classes"] == 5
    assert raw["arch"] == model.arch_config()
    assert json.loads(json.dumps(raw["arch"])) == raw["arch"]
    assert raw["extra"]["flags"] == [True, False]  # tuples become lists
    assert set(raw) == {"format", "version", "arch", "num_classes", "state_dict", "extra"}

    loaded, info = load_checkpoint(path)
    assert not loaded.training
    assert loaded.classifier_kind == "cosine" and loaded.fc.scale == 12.5
    assert loaded.ssl_head is not None
    assert info["extra"]["epoch"] == 3
    torch.testing.assert_close(info["extra"]["ema"], torch.ones(2))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
        torch.testing.assert_close(
            loaded.ssl_head(loaded.features(x)), model.ssl_head(model.features(x))
        )
    # A folder holding model.pt works too.
    again, _ = load_checkpoint(tmp_path / "t1")
    assert again.arch_config() == model.arch_config()


def test_arch_defaults_to_arch_config_and_lazy_mlp(tmp_path: Path) -> None:
    model = create_model("mlp", num_classes=3, in_channels=1, seed=0)
    x = torch.randn(4, 1, 40)
    model(x)  # materialise: in_features = 40
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, info = load_checkpoint(tmp_path / "m.pt")
    assert info["arch"]["kwargs"]["in_features"] == 40 and info["extra"] is None
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pt"
    first = _trained_like()
    save_checkpoint(path, first)
    before = path.read_bytes()

    def broken_save(obj: object, f: object) -> None:
        f.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _trained_like("resnet32"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp file left


def test_unwraps_data_parallel(tmp_path: Path) -> None:
    model = _trained_like()
    save_checkpoint(tmp_path / "m.pt", nn.DataParallel(model))
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in raw["state_dict"])
    assert unwrap_model(nn.DataParallel(model)) is model


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"x": np.zeros(2)}, r"got numpy.ndarray \(at extra\['x'\]\)"),
        ({"a": [1, object()]}, r"at extra\['a'\]\[1\]"),
        ({"p": Path("a")}, "Path"),
        ([1, 2], "Expected extra to be a dict"),
    ],
)
def test_extra_must_load_with_weights_only(tmp_path: Path, extra: object, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        save_checkpoint(tmp_path / "m.pt", _trained_like(), extra=extra)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_bad_arch(tmp_path: Path) -> None:
    model = _trained_like()
    with pytest.raises(UsageError, match="Expected arch"):
        save_checkpoint(tmp_path / "m.pt", model, arch={"name": "resnet20"})
    with pytest.raises(UsageError, match="JSON-able arch"):
        save_checkpoint(tmp_path / "m.pt", model, arch={"name": "x", "kwargs": {"a": {1, 2}}})
    with pytest.raises(UsageError, match="has no arch_config"):
        save_checkpoint(tmp_path / "m.pt", nn.Linear(2, 2))


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"No model checkpoint at .*nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(SpecError, match=r"No model checkpoint at .*model\.pt"):
        load_checkpoint(tmp_path)  # a folder without model.pt
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(SpecError, match=r"junk\.pt is not a softlabels model checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(SpecError, match=r"plain\.pt is not a softlabels model checkpoint"):
        load_checkpoint(plain)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "softlabels-model", "obj": Path("x")}, pickled)
    with pytest.raises(SpecError, match=r"pickled\.pt is not a softlabels model checkpoint"):
        load_checkpoint(pickled)


def test_newer_version_and_damaged_checkpoints(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", _trained_like())
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "version": 2}, tmp_path / "v2.pt")
    with pytest.raises(SpecError, match=r"version 2.*upgrade softlabels"):
        load_checkpoint(tmp_path / "v2.pt")
    torch.save(
        {**raw, "arch": {"name": "resnet99", "kwargs": raw["arch"]["kwargs"]}},
        tmp_path / "unknown.pt",
    )
    with pytest.raises(SpecError, match=r"Cannot rebuild the model in .*unknown\.pt.*resnet99"):
        load_checkpoint(tmp_path / "unknown.pt")
    torch.save(
        {**raw, "arch": {"name": "resnet32", "kwargs": raw["arch"]["kwargs"]}},
        tmp_path / "wrong.pt",
    )
    with pytest.raises(SpecError, match=r"Weights in .*wrong\.pt do not fit resnet32"):
        load_checkpoint(tmp_path / "wrong.pt")
    del raw["state_dict"]
    torch.save(raw, tmp_path / "damaged.pt")
    with pytest.raises(SpecError, match="damaged"):
        load_checkpoint(tmp_path / "damaged.pt")
