"""Model specs: checkpoints, tv:, ts:, py:, registered names, and bad specs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softlabels.errors import SpecError
from softlabels.models import LoadedModel, create_model, load_model, save_checkpoint

FIXTURE = "softlabels_models_fixture_nets"


@pytest.fixture(autouse=True)
def _fixture_module_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def assert_features_reproduce_logits(loaded: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits, feats = loaded.forward(x)
    assert feats is not None and feats.shape == (x.shape[0], loaded.arch["feature_dim"])
    head = loaded.classifier()
    assert head is not None
    weight, bias = head
    assert weight.shape == (loaded.arch["num_classes"], loaded.arch["feature_dim"])
    assert bias.shape == (loaded.arch["num_classes"],)
    if loaded.arch["classifier"] == "cosine":
        rebuilt = loaded.arch["cosine_scale"] * F.normalize(feats) @ F.normalize(weight).T + bias
    else:
        rebuilt = feats @ weight.T + bias
    torch.testing.assert_close(rebuilt, logits, rtol=1e-4, atol=1e-4)
    assert json.loads(json.dumps(loaded.arch)) == loaded.arch
    assert not loaded.module.training
    return logits


def test_checkpoint_file_and_folder(tmp_path: Path) -> None:
    model = create_model("resnet20", num_classes=4, in_channels=3, classifier="cosine", seed=0)
    path = save_checkpoint(tmp_path / "run" / "model.pt", model)
    x = torch.randn(2, 3, 8, 8)
    for spec in (str(path), str(tmp_path / "run")):
        loaded = load_model(spec, num_classes=4, in_channels=3)
        assert loaded.arch["kind"] == "softlabels" and loaded.arch["name"] == "resnet20"
        assert loaded.arch["classifier"] == "cosine" and loaded.arch["cosine_scale"] == 20.0
        assert loaded.arch["config"] == model.arch_config()
        assert loaded.arch["source"] == str(path) and loaded.feature_dim == 64
        logits = assert_features_reproduce_logits(loaded, x)
        torch.testing.assert_close(logits, model.eval()(x))
        assert torch.equal(loaded.classifier()[1], torch.zeros(4))  # type: ignore[index]
    with pytest.raises(SpecError, match="Expected a model with 10 classes, got 4"):
        load_model(str(path), num_classes=10)
    with pytest.raises(SpecError, match="Expected a model for 1 input channels, got 3"):
        load_model(str(path), in_channels=1)


def test_registered_name_is_seeded() -> None:
    loaded = load_model("cnn1d", num_classes=10, in_channels=1, seed=3)
    fresh = create_model("cnn1d", num_classes=10, in_channels=1, seed=3).eval()
    x = torch.randn(5, 1, 40)
    logits = assert_features_reproduce_logits(loaded, x)
    torch.testing.assert_close(logits, fresh(x))
    assert loaded.arch["config"] == fresh.arch_config() and loaded.arch["seed"] == 3
    assert loaded.arch["classifier"] == "linear" and loaded.arch["cosine_scale"] is None
    with pytest.raises(SpecError, match="Expected num_classes and in_channels"):
        load_model("cnn1d", num_classes=10)


def test_torchvision_hook_reproduces_logits(tmp_path: Path) -> None:
    loaded = load_model("tv:resnet18", num_classes=5, input_shape=(3, 16, 16))
    assert loaded.arch["kind"] == "torchvision" and loaded.arch["name"] == "resnet18"
    assert loaded.arch["feature_dim"] == 512 and loaded.arch["num_classes"] == 5
    x = torch.randn(2, 3, 16, 16)
    logits = assert_features_reproduce_logits(loaded, x)
    # Weights file: the exact state dict of another instance, loaded with weights_only.
    torch.manual_seed(1)
    import torchvision

    source = torchvision.models.resnet18(num_classes=5).eval()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    again = load_model(f"tv:resnet18@{tmp_path / 'w.pt'}", num_classes=5)
    with torch.no_grad():
        torch.testing.assert_close(again.forward(x)[0], source(x))
        assert not torch.allclose(again.forward(x)[0], logits)
    assert again.arch["source"] == str(tmp_path / "w.pt")
    with pytest.raises(SpecError, match="do not fit tv:resnet18"):
        load_model(f"tv:resnet18@{tmp_path / 'w.pt'}", num_classes=7)
    with pytest.raises(SpecError, match="No weights file at"):
        load_model(f"tv:resnet18@{tmp_path / 'missing.pt'}")
    with pytest.raises(SpecError, match="Unknown torchvision model 'resnet7'"):
        load_model("tv:resnet7")
    with pytest.raises(SpecError, match=r"Expected tv:NAME\[@WEIGHTS.pt\]"):
        load_model("tv:")


def test_python_callable_with_num_classes() -> None:
    loaded = load_model(f"py:{FIXTURE}:make_net", num_classes=3, in_channels=2)
    assert loaded.arch["kind"] == "python" and loaded.arch["name"] == f"{FIXTURE}:make_net"
    assert loaded.arch["feature_dim"] == 16 and loaded.arch["num_classes"] == 3
    assert loaded.module.head.out_features == 3  # the head, not the earlier aux Linear
    assert_features_reproduce_logits(loaded, torch.randn(4, 2, 2, 2))


def test_python_callable_without_arguments() -> None:
    loaded = load_model(f"py:{FIXTURE}:make_fixed")
    assert loaded.arch["num_classes"] == 6
    assert_features_reproduce_logits(loaded, torch.randn(3, 12))
    # A class works as a callable too; an unmet num_classes is caught on the first batch.
    wrong = load_model(f"py:{FIXTURE}:make_fixed", num_classes=4)
    with pytest.raises(SpecError, match="Expected 4 outputs"):
        wrong.forward(torch.randn(3, 12))


def test_post_processed_logits_are_refused_unless_logits_only() -> None:
    spec = f"py:{FIXTURE}:make_scaled"
    loaded = load_model(spec, num_classes=5)
    with pytest.raises(SpecError, match=r"does not reproduce its logits.*with_features=False"):
        loaded.forward(torch.randn(2, 12))
    with pytest.raises(SpecError, match="does not reproduce"):
        load_model(spec, num_classes=5, input_shape=(12,))
    plain = load_model(spec, num_classes=5, with_features=False)
    logits, feats = plain.forward(torch.randn(2, 12))
    assert logits.shape == (2, 5) and feats is None and plain.classifier() is None
    assert plain.arch["feature_dim"] is None and plain.arch["classifier"] is None


def test_module_without_linear_gives_no_features() -> None:
    loaded = load_model(f"py:{FIXTURE}:ConvOnly")
    logits, feats = loaded.forward(torch.randn(2, 3, 4, 4))
    assert logits.shape == (2, 4) and feats is None and loaded.classifier() is None


def test_from_module_in_memory() -> None:
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    loaded = LoadedModel.from_module(net)
    assert loaded.arch["kind"] == "python" and loaded.arch["num_classes"] == 3
    assert_features_reproduce_logits(loaded, torch.randn(2, 6))
    assert len(net[2]._forward_pre_hooks) == 1
    loaded.close()
    assert len(net[2]._forward_pre_hooks) == 0
    builtin = create_model("mlp", num_classes=3, in_channels=1, in_features=6)
    with pytest.raises(SpecError, match="Expected a model with 5 classes, got 3"):
        LoadedModel.from_module(builtin, num_classes=5)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch >= 2.9 deprecates TorchScript
def test_torchscript_with_and_without_features(tmp_path: Path) -> None:
    model = create_model("resnet20", num_classes=4, in_channels=3, classifier="cosine", seed=0)
    model.eval()
    path = tmp_path / "teacher.ts"
    torch.jit.save(torch.jit.script(model), str(path))
    x = torch.randn(2, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # load_model itself must not warn
        loaded = load_model(f"ts:{path}", num_classes=4)
    assert loaded.arch["kind"] == "torchscript" and loaded.arch["source"] == str(path)
    assert loaded.arch["classifier"] == "cosine" and loaded.arch["cosine_scale"] == 20.0
    logits = assert_features_reproduce_logits(loaded, x)
    torch.testing.assert_close(logits, model(x))

    plain = torch.jit.trace(nn.Sequential(nn.Flatten(1), nn.Linear(12, 3)), torch.randn(1, 12))
    torch.jit.save(plain, str(tmp_path / "plain.ts"))
    bare = load_model(f"ts:{tmp_path / 'plain.ts'}")
    logits, feats = bare.forward(torch.randn(2, 12))
    assert logits.shape == (2, 3) and feats is None and bare.classifier() is None

    (tmp_path / "junk.ts").write_bytes(b"junk")
    with pytest.raises(SpecError, match=r"junk\.ts is not a TorchScript file"):
        load_model(f"ts:{tmp_path / 'junk.ts'}")
    with pytest.raises(SpecError, match="No TorchScript file"):
        load_model(f"ts:{tmp_path / 'missing.ts'}")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "Expected a model spec"),
        ("resnet33", r"Unknown model spec 'resnet33'.*resnet32"),
        ("runs/none/model.pt", "No model checkpoint at runs/none/model.pt"),
        ("py:nomodule_xyz_123:make", "Cannot import nomodule_xyz_123"),
        (f"py:{FIXTURE}:missing", "has no attribute 'missing'"),
        (f"py:{FIXTURE}", r"Expected py:MODULE:CALLABLE"),
        (f"py:{FIXTURE}:not_a_module", "to return an nn.Module, got int"),
        (f"py:{FIXTURE}:broken", "failed: RuntimeError: cannot build 10 classes"),
        (f"py:{FIXTURE}:__all__", "Expected a callable"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(SpecError, match=match) as info:
        load_model(spec, num_classes=10, in_channels=3)
    assert "\n" not in str(info.value)


def test_folder_without_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"holds no model\.pt"):
        load_model(str(tmp_path))
