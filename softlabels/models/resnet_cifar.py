"""CIFAR ResNets (He et al. 2016, §4.2): resnet20/32/44/56, and resnet8 (n = 1).

Three stages of n basic blocks (n = (depth - 2) / 6) with 16, 32 and 64 channels, the
second and third starting with stride 2; the parameter-free option-A shortcut (strided
subsampling plus zero channel padding) where a block changes shape; BN and ReLU; global
average pooling to a 64-d feature; Kaiming-normal initialisation of convolutions and
linear layers. Any number of input channels and any input size (8x8 digits, 32x32 CIFAR)
works: the pooled feature does not depend on the spatial size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from softlabels.errors import UsageError
from softlabels.models._base import ClassifierNet, ModelArgs
from softlabels.models._registry import register_model

__all__ = [
    "BasicBlock",
    "CifarResNet",
    "resnet8",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
]


class ShortcutA(nn.Module):
    """Option-A shortcut: keep every ``stride``-th pixel, zero-pad the new channels."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_lo = (planes - in_planes) // 2
        self.pad_hi = planes - in_planes - self.pad_lo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_lo, self.pad_hi))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = (
            ShortcutA(in_planes, planes, stride)
            if stride != 1 or in_planes != planes
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(ClassifierNet):
    """The CIFAR ResNet of the given depth (6n + 2); ``feature_dim`` is 64."""

    def __init__(self, name: str, args: ModelArgs, depth: int) -> None:
        if depth < 8 or (depth - 2) % 6 != 0:
            raise UsageError(f"Expected a CIFAR ResNet depth of 6n + 2 (20, 32, ...), got {depth}")
        super().__init__(name, args, feature_dim=64)
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(args.in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_stage(16, 16, n, stride=1)
        self.layer2 = self._make_stage(16, 32, n, stride=2)
        self.layer3 = self._make_stage(32, 64, n, stride=2)
        self._add_heads()
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_planes, planes, stride)]
        blocks += [BasicBlock(planes, planes, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


def _create(name: str, args: ModelArgs, depth: int) -> CifarResNet:
    return CifarResNet(name, args, depth=depth)


@register_model
def resnet8(args: ModelArgs) -> CifarResNet:
    """ResNet-8 (1 block per stage, 75k parameters): a small student, e.g. for 28x28 inputs."""
    return _create("resnet8", args, 8)


@register_model
def resnet20(args: ModelArgs) -> CifarResNet:
    """ResNet-20 (3 blocks per stage, 0.27M parameters at 10 classes)."""
    return _create("resnet20", args, 20)


@register_model
def resnet32(args: ModelArgs) -> CifarResNet:
    """ResNet-32 (5 blocks per stage, 0.46M parameters): the usual CIFAR-LT backbone."""
    return _create("resnet32", args, 32)


@register_model
def resnet44(args: ModelArgs) -> CifarResNet:
    """ResNet-44 (7 blocks per stage, 0.66M parameters)."""
    return _create("resnet44", args, 44)


@register_model
def resnet56(args: ModelArgs) -> CifarResNet:
    """ResNet-56 (9 blocks per stage, 0.85M parameters)."""
    return _create("resnet56", args, 56)
