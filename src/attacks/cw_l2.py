"""Carlini & Wagner (2017), L2 (`attack=cw_l2`): the algorithm is `cw_l2` in carlini_wagner.py."""

from __future__ import annotations

import torch
from torch import nn

from src.attacks.base import Attack, at_least_one, positive
from src.attacks.carlini_wagner import cw_l2


class CWL2(Attack):
    minimal_norm = 2.0

    def __init__(
        self,
        confidence: float = 0.0,
        learning_rate: float = 0.01,
        binary_search_steps: int = 10,
        max_iter: int = 10,
        initial_const: float = 0.01,
        max_halving: int = 5,
        max_doubling: int = 5,
        **base,
    ) -> None:
        super().__init__(**base)
        at_least_one(max_iter=max_iter, binary_search_steps=binary_search_steps)
        positive(learning_rate=learning_rate, initial_const=initial_const)
        self.settings = {
            "confidence": confidence,
            "learning_rate": learning_rate,
            "binary_search_steps": binary_search_steps,
            "max_iter": max_iter,
            "initial_const": initial_const,
            "max_halving": max_halving,
            "max_doubling": max_doubling,
        }

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cw_l2(model, x, y, **self.settings)

    def art_attack(self, estimator):
        from art.attacks.evasion import CarliniL2Method

        return CarliniL2Method(estimator, batch_size=self.batch_size, verbose=False, **self.settings)
