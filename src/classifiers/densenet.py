"""DenseNet-BC (Huang et al. 2017), the voters of Table B.3 and chapter 5's surrogates.

Three dense blocks of bottleneck layers, compression 0.5. Layers per block are
(depth - 4) // 6, which is exact for depth 100 (16) and rounds depth 50 down to 7, as the
Keras implementation the source used does (**Decision**, documented in the README).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenseLayer(nn.Module):
    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(),
            nn.Conv2d(in_ch, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth),
            nn.ReLU(),
            nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.net(x)], 1)


class Transition(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.AvgPool2d(2),
        )


class DenseNet(nn.Module):
    def __init__(
        self,
        depth: int,
        growth: int,
        in_channels: int = 3,
        image_size: int = 32,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        del image_size  # global pooling makes the network size-agnostic
        layers_per_block = (depth - 4) // 6
        channels = 2 * growth
        modules: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                modules.append(DenseLayer(channels, growth))
                channels += growth
            if block < 2:
                modules.append(Transition(channels, channels // 2))
                channels //= 2
        modules += [nn.BatchNorm2d(channels), nn.ReLU()]
        self.features = nn.Sequential(*modules)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))
