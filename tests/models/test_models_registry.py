"""Registry and built-in architectures: shapes, heads, seeded init, arch_config."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softlabels.errors import SpecError, UsageError
from softlabels.models import (
    ClassifierNet,
    CosineClassifier,
    ModelArgs,
    _registry,
    create_model,
    is_model,
    list_models,
    register_model,
)
from softlabels.models.resnet_cifar import BasicBlock, ShortcutA

# One sample's shape per architecture; image models also get 32x32 CIFAR inputs below.
SAMPLE_SHAPES: dict[str, tuple[int, ...]] = {
    "cnn1d": (1, 40),
    "resnet1d": (1, 40),
    "mlp": (3, 8, 8),
    # composite students default to a cnn1d backbone
    "projected": (1, 40),
    "twohead": (1, 40),
    "experts": (1, 40),
}
FEATURE_DIMS = {"cnn1d": 128, "resnet1d": 256, "mlp": 256, "projected": 128, "twohead": 128}
# ECL's multi-expert model has no single feature/fc pair: tested on its own below.
CLASSIFIER_NETS = [n for n in list_models() if n != "experts"]


def sample_shape(name: str) -> tuple[int, ...]:
    return SAMPLE_SHAPES.get(name, (3, 8, 8))


def build(name: str, **kw: object) -> nn.Module:
    kw.setdefault("num_classes", 7)
    kw.setdefault("in_channels", sample_shape(name)[0])
    return create_model(name, **kw)  # type: ignore[arg-type]


def test_builtins_are_registered() -> None:
    names = list_models()
    assert {"resnet20", "resnet32", "resnet44", "resnet56", "cnn1d", "mlp"} <= set(names)
    assert {"resnet8", "resnet1d"} <= set(names)
    assert names == sorted(names)
    # resnet1d and resnet8 joined the list (it held the four CIFAR depths before).
    assert list_models("resnet*") == [
        "resnet1d", "resnet20", "resnet32", "resnet44", "resnet56", "resnet8",
    ]  # fmt: skip
    assert list_models("resnet[2-5]*") == ["resnet20", "resnet32", "resnet44", "resnet56"]
    assert is_model("resnet32") and not is_model("resnet33") and not is_model(3)


@pytest.mark.parametrize("name", CLASSIFIER_NETS)
@pytest.mark.parametrize("classifier", ["linear", "cosine"])
def test_shapes_and_features_fc_consistency(name: str, classifier: str) -> None:
    model = build(name, classifier=classifier, seed=0).eval()
    assert isinstance(model, ClassifierNet)
    x = torch.randn(3, *sample_shape(name))
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
    assert logits.shape == (3, 7)
    assert feats.shape == (3, model.feature_dim)
    assert model.feature_dim == FEATURE_DIMS.get(name, 64)
    torch.testing.assert_close(model.fc(feats), logits)
    kind = CosineClassifier if classifier == "cosine" else nn.Linear
    assert isinstance(model.fc, kind)
    assert model.classifier_kind == classifier
    assert model.ssl_head is None


@pytest.mark.parametrize("name", CLASSIFIER_NETS)
def test_rotation_head(name: str) -> None:
    model = build(name, ssl_head="rotation", seed=0)
    assert isinstance(model.ssl_head, nn.Linear)
    assert (model.ssl_head.in_features, model.ssl_head.out_features) == (model.feature_dim, 4)
    x = torch.randn(2, *sample_shape(name))
    assert model.ssl_head(model.features(x)).shape == (2, 4)
    assert model(x).shape == (2, 7)


@pytest.mark.parametrize("name", CLASSIFIER_NETS)
def test_seeded_init_is_deterministic_and_leaves_global_rng(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build(name, seed=5)
    b = build(name, seed=5)
    c = build(name, seed=6)
    x = torch.randn(2, *sample_shape(name), generator=torch.Generator().manual_seed(0))
    for m in (a, b, c):
        m(x)  # materialises a lazy first layer, seeded too
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())


def test_unseeded_init_uses_global_rng() -> None:
    torch.manual_seed(0)
    a = build("resnet20")
    torch.manual_seed(0)
    b = build("resnet20")
    assert torch.equal(a.conv1.weight, b.conv1.weight)


@pytest.mark.parametrize("name", CLASSIFIER_NETS)
def test_arch_config_rebuilds(name: str) -> None:
    model = build(name, classifier="cosine", cosine_scale=16.0, ssl_head="rotation", seed=1)
    x = torch.randn(2, *sample_shape(name))
    model(x)
    cfg = model.arch_config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["name"] == name
    assert cfg["kwargs"]["num_classes"] == 7
    assert cfg["kwargs"]["classifier"] == "cosine" and cfg["kwargs"]["cosine_scale"] == 16.0
    twin = create_model(cfg["name"], **cfg["kwargs"])
    twin.load_state_dict(model.state_dict())
    model.eval()
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))


@pytest.mark.parametrize("name", ["resnet8", "resnet20", "resnet56"])
@pytest.mark.parametrize("in_channels", [1, 3, 5])
def test_resnet_any_channels_and_sizes(name: str, in_channels: int) -> None:
    model = build(name, in_channels=in_channels, seed=0)
    for size in (8, 32, 28, 5, 1):  # 28: Fashion-MNIST
        assert model(torch.randn(2, in_channels, size, size)).shape == (2, 7)


@pytest.mark.parametrize(
    ("name", "params"),
    # He et al. 2016 / the common PyTorch port: 0.27M, 0.46M, 0.66M, 0.85M at 10 classes.
    [
        ("resnet8", 75_290),
        ("resnet20", 269_722),
        ("resnet32", 464_154),
        ("resnet44", 658_586),
        ("resnet56", 853_018),
    ],
)
def test_resnet_parameter_counts(name: str, params: int) -> None:
    model = create_model(name, num_classes=10, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == params


def test_option_a_shortcut_is_parameter_free() -> None:
    block = BasicBlock(16, 32, stride=2)
    assert isinstance(block.shortcut, ShortcutA)
    assert list(block.shortcut.parameters()) == []
    x = torch.randn(2, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0
    assert isinstance(BasicBlock(16, 16).shortcut, nn.Identity)


def test_cnn1d_accepts_signals_without_channel_axis() -> None:
    model = build("cnn1d", seed=0).eval()
    x = torch.randn(4, 40)
    torch.testing.assert_close(model(x), model(x.unsqueeze(1)))
    assert model(torch.randn(2, 1, 100)).shape == (2, 7)


def test_mlp_lazy_and_explicit_in_features() -> None:
    lazy = create_model("mlp", num_classes=3, in_channels=1, seed=0)
    assert not lazy.is_materialized
    assert lazy.arch_config()["kwargs"]["in_features"] is None
    lazy(torch.randn(2, 4, 5))
    assert lazy.is_materialized and lazy.arch_config()["kwargs"]["in_features"] == 20
    eager = create_model("mlp", num_classes=3, in_channels=1, in_features=20, hidden=8, seed=0)
    assert eager.feature_dim == 8 and eager.body[0].in_features == 20
    deep = create_model("mlp", num_classes=3, in_channels=1, in_features=20, num_layers=3)
    assert sum(isinstance(m, nn.Linear) for m in deep.body) == 3


@pytest.mark.parametrize("name", CLASSIFIER_NETS)
def test_torchscript_keeps_features_and_fc(name: str) -> None:
    model = build(name, classifier="cosine", seed=0).eval()
    x = torch.randn(2, *sample_shape(name))
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 deprecates TorchScript
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted.features(x), model.features(x))
        torch.testing.assert_close(scripted(x), model(x))
    assert scripted.fc.original_name == "CosineClassifier" and scripted.fc.scale == 20.0


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(SpecError, match=r"Unknown model 'resnet33'.*resnet32"):
        create_model("resnet33", num_classes=10, in_channels=3)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"num_classes": 0}, "num_classes >= 1, got 0"),
        ({"num_classes": True}, "num_classes"),
        ({"in_channels": 0}, "in_channels >= 1"),
        ({"classifier": "arcface"}, "classifier 'linear' or 'cosine', got 'arcface'"),
        ({"cosine_scale": 0.0}, "cosine_scale > 0"),
        ({"cosine_scale": float("nan")}, "cosine_scale"),
        ({"ssl_head": "jigsaw"}, "ssl_head None or 'rotation'"),
        ({"seed": -1}, "seed"),
        ({"width": 2}, r"Unexpected argument\(s\) width for model 'resnet20'"),
    ],
)
def test_bad_arguments_raise_usage_error(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"num_classes": 10, "in_channels": 3, **kw}
    with pytest.raises(UsageError, match=match):
        create_model("resnet20", **args)  # type: ignore[arg-type]


def test_bad_architecture_arguments() -> None:
    with pytest.raises(UsageError, match="hidden >= 1"):
        create_model("mlp", num_classes=2, in_channels=1, hidden=0)
    with pytest.raises(UsageError, match="channels >= 1"):
        create_model("cnn1d", num_classes=2, in_channels=1, channels=0)


def test_none_kwargs_keep_defaults() -> None:
    model = create_model("cnn1d", num_classes=2, in_channels=1, hidden=None)
    assert model.feature_dim == 128


def test_register_twice_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_model_entrypoints", dict(_registry._model_entrypoints))

    @register_model
    def tiny_test_net(args: ModelArgs, *, width: int = 4) -> nn.Module:
        return nn.Linear(width, args.num_classes)

    assert is_model("tiny_test_net")
    model = create_model("tiny_test_net", num_classes=3, in_channels=1, width=5)
    assert model.in_features == 5
    with pytest.raises(UsageError, match="already registered"):
        register_model(tiny_test_net)
    with pytest.raises(UsageError, match="already registered"):
        register_model(name="resnet20")(tiny_test_net)

    @register_model(name="tiny-alias")
    def other(args: ModelArgs) -> nn.Module:
        return nn.Linear(2, args.num_classes)

    assert is_model("tiny-alias") and not is_model("other")


def test_cosine_classifier_formula() -> None:
    torch.manual_seed(0)
    head = CosineClassifier(6, 4, scale=20.0)
    assert head.weight.shape == (4, 6) and head.bias is None
    assert [n for n, _ in head.named_parameters()] == ["weight"]  # s is fixed, not learned
    v = torch.randn(5, 6)
    w = head.weight.detach()
    expected = torch.empty(5, 4)
    for i in range(5):
        for c in range(4):
            expected[i, c] = 20.0 * torch.dot(w[c], v[i]) / (w[c].norm() * v[i].norm())
    torch.testing.assert_close(head(v), expected)
    torch.testing.assert_close(head(v * 7.0), expected)  # invariant to the feature's norm
    torch.testing.assert_close(head(v).abs().max() <= 20.0 + 1e-5, torch.tensor(True))
    expected_f = 20.0 * F.normalize(v, dim=1) @ F.normalize(w, dim=1).T
    torch.testing.assert_close(head(v), expected_f)
    assert "scale=20.0" in repr(head)


def test_cosine_classifier_gradients_and_bad_scale() -> None:
    head = CosineClassifier(3, 2, scale=10)
    head(torch.randn(4, 3)).sum().backward()
    assert head.weight.grad is not None
    with pytest.raises(UsageError, match="cosine scale > 0"):
        CosineClassifier(3, 2, scale=-1.0)


def test_experts_model() -> None:
    model = build("experts", seed=0).eval()
    x = torch.randn(2, 1, 40)
    outs = model.expert_outputs(x)
    assert len(outs) == 3 and all(
        v.shape == (2, 128) and c.shape == r.shape == (2, 7) for v, c, r in outs
    )
    torch.testing.assert_close(model(x), torch.stack([c for _, c, _ in outs]).mean(0))
    one = build("experts", seed=0, inference="1").eval()
    torch.testing.assert_close(one(x), outs[1][1])
    rebuilt = create_model(
        **{"name": model.arch_config()["name"], **model.arch_config()["kwargs"]}, seed=0
    )
    assert rebuilt.arch_config() == model.arch_config()
    with pytest.raises(UsageError, match="K >= 2"):
        build("experts", num_experts=1)
