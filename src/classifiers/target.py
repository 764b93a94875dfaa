"""The target models A, B, C of Table B.1 (SPEC 2.1), for Fashion-MNIST and CIFAR-10.

Dense layers are sized by a dummy forward at construction, so the same class serves 28x28
and zero-padded 32x32 inputs. Keras' 'valid' padding is PyTorch's padding=0.
"""

from __future__ import annotations

import torch
from torch import nn


class _SizedHead(nn.Module):
    """Features, then Flatten and Dense layers whose input size is measured, not hand-computed.

    `hidden=128` gives Table B.1's Dropout(d0) Dense(128) ReLU Dropout(d1) Dense(classes);
    `hidden=None` gives Dropout(d0) Dense(classes) (no dropout when `dropout` is empty).
    """

    def __init__(
        self,
        features: nn.Sequential,
        in_shape: tuple[int, int, int],
        num_classes: int,
        hidden: int | None = None,
        dropout: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.features = features
        with torch.no_grad():
            flat = features.eval()(torch.zeros(1, *in_shape)).numel()
        features.train()
        drops = [nn.Dropout(p) for p in dropout]
        if hidden is None:
            layers = [*drops, nn.Linear(flat, num_classes)]
        else:
            layers = [drops[0], nn.Linear(flat, hidden), nn.ReLU(), drops[1], nn.Linear(hidden, num_classes)]
        self.head = nn.Sequential(nn.Flatten(), *layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FmnistA(_SizedHead):
    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10):
        features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5), nn.ReLU(), nn.Conv2d(64, 64, 5, stride=2), nn.ReLU()
        )
        super().__init__(features, (in_channels, image_size, image_size), num_classes, 128, (0.25, 0.5))


class FmnistB(_SizedHead):
    """The first conv is Keras 'same' with stride 2: 3 pixels each side for kernel 8 on 28 or 32."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10):
        features = nn.Sequential(
            nn.Dropout(0.2),
            nn.Conv2d(in_channels, 64, 8, stride=2, padding=3),
            nn.ReLU(),
            nn.Conv2d(64, 128, 6, stride=2),
            nn.ReLU(),
            nn.Conv2d(128, 128, 5),
            nn.ReLU(),
        )
        super().__init__(features, (in_channels, image_size, image_size), num_classes, None, (0.5,))


class FmnistC(_SizedHead):
    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10):
        features = nn.Sequential(
            nn.Conv2d(in_channels, 128, 3), nn.ReLU(), nn.Conv2d(128, 64, 5, stride=2), nn.ReLU()
        )
        super().__init__(features, (in_channels, image_size, image_size), num_classes, 128, (0.25, 0.5))


def _conv_act_bn(in_ch: int, out_ch: int, act: type[nn.Module]) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1), act(), nn.BatchNorm2d(out_ch)]


def _cifar_stage(widths: list[int], in_ch: int, act: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width in widths:
        layers += _conv_act_bn(in_ch, width, act)
        in_ch = width
    return [*layers, nn.MaxPool2d(2), nn.Dropout(0.2)]


class _CifarTarget(_SizedHead):
    stages: tuple[tuple[int, ...], ...]
    activation: type[nn.Module]

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10):
        layers: list[nn.Module] = []
        in_ch = in_channels
        for widths in self.stages:
            layers += _cifar_stage(list(widths), in_ch, self.activation)
            in_ch = widths[-1]
        super().__init__(nn.Sequential(*layers), (in_channels, image_size, image_size), num_classes)


class CifarA(_CifarTarget):
    stages = ((32, 32), (64, 64), (128, 128))
    activation = nn.ELU


class CifarB(_CifarTarget):
    """As A with ReLU; strides are 1 (SPEC 2.1 decision: the printed stride 2 cannot run)."""

    stages = ((32, 32), (64, 64), (128, 128))
    activation = nn.ReLU


class CifarC(_CifarTarget):
    stages = ((32, 32), (64, 128))
    activation = nn.ELU
