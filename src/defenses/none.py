"""`defense=none`: the identity, so every table has the undefended baseline in the same rows."""

from __future__ import annotations

import torch

from src.defenses.base import Defense


class NoDefense(Defense):
    gradient = "exact"
    export_refusal = "it is the identity: there is nothing to export"

    def __init__(self, name: str = "none") -> None:
        super().__init__()
        self.name = name

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return x
