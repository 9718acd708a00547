"""TinyML-style architectures behind one registry.

Every model takes images in [0, 1] and normalises inside (``Normalize`` is its first layer), so
attacks, quantizers and defenses all work on the same scale. ``create_model`` is the only door.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from qrobust.data.datasets import DatasetSpec
from qrobust.pipeline.registry import Registry


@dataclass(frozen=True)
class InputSpec:
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def input_spec(dataset: DatasetSpec) -> InputSpec:
    return InputSpec(dataset.channels, dataset.size, len(dataset.classes), dataset.mean, dataset.std)


ARCHITECTURES: Registry[Callable[[InputSpec], nn.Module]] = Registry("architecture")


class Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


@ARCHITECTURES.register("lenet")
def lenet(spec: InputSpec) -> nn.Module:
    """LeNet-5-like CNN (LeCun et al. 1998), widened to 16/32 channels as in TinyML benchmarks."""
    flat = 32 * ((spec.size // 2 - 4) // 2) ** 2
    return nn.Sequential(
        Normalize(spec.mean, spec.std),
        nn.Conv2d(spec.channels, 16, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, 128),
        nn.ReLU(),
        nn.Linear(128, spec.num_classes),
    )


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, 3, stride), nn.ReLU(), *_conv_bn(cout, cout, 3))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


@ARCHITECTURES.register("resnet8")
def resnet8(spec: InputSpec) -> nn.Module:
    """MLPerf Tiny image-classification ResNet-8 (Banbury et al. 2021): 16-32-64 channels, one block each."""
    return nn.Sequential(
        Normalize(spec.mean, spec.std),
        *_conv_bn(spec.channels, 16, 3),
        nn.ReLU(),
        ResidualBlock(16, 16, 1),
        ResidualBlock(16, 32, 2),
        ResidualBlock(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, spec.num_classes),
    )


def _depthwise_separable(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [*_conv_bn(cin, cin, 3, stride, groups=cin), nn.ReLU(), *_conv_bn(cin, cout, 1), nn.ReLU()]


@ARCHITECTURES.register("dscnn")
def dscnn(spec: InputSpec) -> nn.Module:
    """Depthwise-separable CNN in the MobileNet / MLPerf Tiny DS-CNN style (Howard et al. 2017; Zhang et al. 2017)."""
    return nn.Sequential(
        Normalize(spec.mean, spec.std),
        *_conv_bn(spec.channels, 32, 3, stride=2),
        nn.ReLU(),
        *_depthwise_separable(32, 64, 1),
        *_depthwise_separable(64, 128, 2),
        *_depthwise_separable(128, 128, 1),
        *_depthwise_separable(128, 128, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, spec.num_classes),
    )


def create_model(name: str, spec: InputSpec) -> nn.Module:
    return ARCHITECTURES.get(name, key="train.archs")(spec)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, spec: InputSpec) -> int:
    """Multiply-accumulates of one forward pass on one image, counted from conv and linear layers."""
    macs = 0

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs += output.numel() * per_output
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, spec.channels, spec.size, spec.size))
    finally:
        for handle in handles:
            handle.remove()
    return macs
