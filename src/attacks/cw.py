"""Carlini & Wagner (2017), L-inf (`attack=cw`): the algorithm is `cw_linf` in carlini_wagner.py."""

from __future__ import annotations

import math

import torch
from torch import nn

from src.attacks.base import Attack, at_least_one, positive
from src.attacks.carlini_wagner import cw_linf
from src.errors import AdvPurifyError


class CWLinf(Attack):
    minimal_norm = math.inf

    def __init__(
        self,
        confidence: float = 0.0,
        learning_rate: float = 0.01,
        max_iter: int = 10,
        decrease_factor: float = 0.9,
        initial_const: float = 1e-5,
        largest_const: float = 20.0,
        const_factor: float = 2.0,
        **base,
    ) -> None:
        super().__init__(**base)
        at_least_one(max_iter=max_iter)
        positive(learning_rate=learning_rate, initial_const=initial_const, largest_const=largest_const)
        if not 0 < decrease_factor < 1 or not const_factor > 1:
            raise AdvPurifyError(
                f"attack.decrease_factor={decrease_factor}, attack.const_factor={const_factor}: "
                "CW-L-inf needs 0 < decrease_factor < 1 and const_factor > 1"
            )
        self.settings = {
            "confidence": confidence,
            "learning_rate": learning_rate,
            "max_iter": max_iter,
            "decrease_factor": decrease_factor,
            "initial_const": initial_const,
            "largest_const": largest_const,
            "const_factor": const_factor,
        }

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cw_linf(model, x, y, **self.settings)

    def art_attack(self, estimator):
        from art.attacks.evasion import CarliniLInfMethod

        return CarliniLInfMethod(estimator, batch_size=self.batch_size, verbose=False, **self.settings)
