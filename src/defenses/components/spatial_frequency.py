"""The spatial frequency loss of SFL-VAE (SPEC 3.1): MSE between Laplacian-of-Gaussian responses.

MSE alone blurs reconstructions; comparing LoG responses of x and X_C penalizes lost edges
at the scale sigma sets. Several scales can be weighted together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def log_kernel(sigma: float) -> torch.Tensor:
    """SPEC 3.1's LoG(u, v) = -1/(pi sigma^4) (1 - r^2/(2 sigma^2)) exp(-r^2/(2 sigma^2)).

    Sampled on a (2 ceil(3 sigma) + 1)^2 grid. Truncation leaves a small non-zero sum, which
    would make flat regions respond; the kernel is shifted to sum exactly to zero.
    """
    if sigma <= 0:
        raise ValueError(f"LoG sigma must be > 0, got {sigma}")
    radius = math.ceil(3 * sigma)
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    r2 = u[:, None] ** 2 + u[None, :] ** 2
    kernel = -(1 / (math.pi * sigma**4)) * (1 - r2 / (2 * sigma**2)) * torch.exp(-r2 / (2 * sigma**2))
    return (kernel - kernel.mean()).float()


class SpatialFrequencyLoss(nn.Module):
    """Per-image sum over pixels of (LoG * x - LoG * x_hat)^2, per channel, averaged over the batch."""

    def __init__(self, sigmas: Sequence[float] = (1.0,), weights: Sequence[float] | None = None) -> None:
        super().__init__()
        weights = [1.0] * len(sigmas) if weights is None else list(weights)
        if not sigmas or len(weights) != len(sigmas):
            raise ValueError(f"give one weight per LoG sigma: sigmas={list(sigmas)}, weights={weights}")
        self.weights = weights
        for i, sigma in enumerate(sigmas):
            self.register_buffer(f"kernel{i}", log_kernel(sigma), persistent=False)

    def response(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """LoG * x per channel; replicated borders, so a flat image gives exactly zero."""
        kernel = getattr(self, f"kernel{index}")
        r, channels = kernel.shape[-1] // 2, x.shape[1]
        padded = F.pad(x, (r, r, r, r), mode="replicate")
        return F.conv2d(padded, kernel.expand(channels, 1, -1, -1), groups=channels)

    def forward(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        diff = x - x_hat  # the filter is linear: LoG * x - LoG * x_hat = LoG * (x - x_hat)
        return sum(
            w * self.response(diff, i).pow(2).flatten(1).sum(1).mean() for i, w in enumerate(self.weights)
        )
