"""The DCGAN-style generator and critic of Defense-GAN (SPEC 3.4), and WGAN-GP's penalty.

Two stride-2 stages, so any input side divisible by 4 works (28 and 32 alike). The critic
has no batch norm: the gradient penalty is defined per sample (Gulrajani et al. 2017).
"""

from __future__ import annotations

import torch
from torch import nn

from src.runtime.errors import AdvPurifyError


class Generator(nn.Module):
    def __init__(self, channels: int, size: int, z_dim: int = 128, width: int = 64) -> None:
        super().__init__()
        if size % 4:
            raise AdvPurifyError(f"Defense-GAN's generator needs an image side divisible by 4, got {size}")
        self.z_dim, self.base = z_dim, size // 4
        self.project = nn.Sequential(
            nn.Linear(z_dim, 4 * width * self.base**2), nn.BatchNorm1d(4 * width * self.base**2), nn.ReLU()
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, channels, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z).view(len(z), -1, self.base, self.base))


class Critic(nn.Module):
    def __init__(self, channels: int, size: int, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(4 * width * (size // 4) ** 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad D(x_mix)||_2 - 1)^2] on random interpolates of real and fake images."""
    mix = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
    x_mix = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_mix).sum(), x_mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
