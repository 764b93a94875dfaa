"""`defense=none`: the identity, so every table has the undefended baseline in the same rows."""

from __future__ import annotations

import torch
from torch import nn


class NoDefense(nn.Module):
    gradient = "exact"
    stochastic = False

    def __init__(self, name: str = "none") -> None:
        super().__init__()
        self.name = name

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return x
