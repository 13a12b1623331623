"""resnet1d: the residual 1-D teacher (stronger than cnn1d on mnist1d100-lt)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from softlabels.errors import UsageError
from softlabels.models import create_model, load_model
from softlabels.models.resnet1d import BasicBlock1d


def test_defaults_shapes_and_parameter_count() -> None:
    model = create_model("resnet1d", num_classes=100, in_channels=1, seed=0).eval()
    # stem + 3 stages x 1 block x 2 convs, widths 32/64/128, two 1x1 conv shortcuts.
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 9 and [c.out_channels for c in convs if c.kernel_size == (3,)] == [
        32, 32, 64, 64, 128, 128,
    ]  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == 299_844
    cnn = create_model("cnn1d", num_classes=100, in_channels=1)
    assert sum(p.numel() for p in model.parameters()) > 6 * sum(p.numel() for p in cnn.parameters())
    x = torch.randn(4, 1, 40)
    with torch.no_grad():
        assert model.stages(model.stem(x)).shape == (4, 128, 10)  # 40 -> 40 -> 20 -> 10
        assert model.features(x).shape == (4, 256)
        torch.testing.assert_close(model(x.squeeze(1)), model(x))  # no channel axis
        assert model(torch.randn(2, 1, 97)).shape == (2, 100)  # any length


def test_blocks_shortcuts_and_arguments() -> None:
    same = BasicBlock1d(16, 16, 1, 3).eval()
    assert isinstance(same.shortcut, nn.Identity)
    nn.init.zeros_(same.bn2.weight)  # the residual branch silenced: the block is relu(x)
    x = torch.randn(2, 16, 40)
    with torch.no_grad():
        torch.testing.assert_close(same(x), torch.relu(x))
    down = BasicBlock1d(16, 32, 2, 5)
    assert isinstance(down.shortcut[0], nn.Conv1d) and down.shortcut[0].stride == (2,)
    assert down(torch.randn(2, 16, 40)).shape == (2, 32, 20)
    deep = create_model("resnet1d", num_classes=5, in_channels=2, blocks=3, width=8, kernel=5)
    assert sum(isinstance(m, BasicBlock1d) for m in deep.modules()) == 9
    assert deep.arch_config()["kwargs"]["blocks"] == 3
    with pytest.raises(UsageError, match="odd kernel"):
        create_model("resnet1d", num_classes=5, in_channels=1, kernel=4)
    with pytest.raises(UsageError, match="width >= 1"):
        create_model("resnet1d", num_classes=5, in_channels=1, width=0)


def test_loaded_teacher_gives_the_final_linear_layers_input() -> None:
    lm = load_model("resnet1d", num_classes=10, in_channels=1, input_shape=(1, 40))
    x = torch.randn(3, 1, 40)
    with torch.inference_mode():
        logits, feats = lm.forward(x)
    w, b = lm.classifier()
    assert feats.shape == (3, 256) and lm.arch["feature_dim"] == 256
    torch.testing.assert_close(feats @ w.T + b, logits)
