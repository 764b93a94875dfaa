"""Vector quantization with class-structured codebooks (SPEC 3.3, chapter 5).

The codebook of a depth holds K = C * M vectors, C classes by M spatial positions, with the
vector for (class c, position m) at row c * M + m, so the EMA update (Algorithm 1) can move
each class's codes towards that class's features. At test time the class is unknown and
every spatial vector searches the whole codebook.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Quantized(NamedTuple):
    """One depth's quantization: what goes forward, and what the losses and callbacks read."""

    q_st: torch.Tensor  # N x G x H x W: a + stopgrad(q - a), the straight-through output
    q: torch.Tensor  # N x G x H x W: the selected codebook vectors (grads reach the codebook)
    a: torch.Tensor  # N x G x H x W: the encoder output before quantization
    indices: torch.Tensor  # N x H x W: selected rows of the codebook

    @property
    def loss_e(self) -> torch.Tensor:
        """||a - stopgrad(q)||^2: pulls the encoder to the codebook (the spec's intended L_E)."""
        return F.mse_loss(self.a, self.q.detach())

    @property
    def loss_q(self) -> torch.Tensor:
        """||stopgrad(a) - q||^2: pulls the codebook to the encoder (L_Q)."""
        return F.mse_loss(self.a.detach(), self.q)


class Quantizer(nn.Module):
    def __init__(self, num_classes: int, positions: int, dim: int) -> None:
        super().__init__()
        self.num_classes, self.positions, self.dim = num_classes, positions, dim
        self.codebook = nn.Parameter(torch.randn(num_classes * positions, dim) / dim**0.5)

    def forward(self, a: torch.Tensor) -> Quantized:
        n, g, h, w = a.shape
        flat = a.permute(0, 2, 3, 1).reshape(-1, g)  # (N*H*W) x G
        with torch.no_grad():
            distances = torch.cdist(flat, self.codebook).square_()
            indices = distances.argmin(1)
        # not codebook[indices]: on CPU its gradient sums in a varying order, so a training
        # could not repeat itself bit for bit (tests/test_train.py)
        q = F.embedding(indices, self.codebook).view(n, h, w, g).permute(0, 3, 1, 2)
        q_st = a + (q - a).detach()
        return Quantized(q_st, q, a, indices.view(n, h, w))

    @torch.no_grad()
    def usage(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(perplexity, fraction of codes used) over a batch: a dead codebook shows as ~1 and ~0."""
        counts = torch.bincount(indices.flatten(), minlength=len(self.codebook)).float()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return entropy.exp(), (counts > 0).float().mean()
