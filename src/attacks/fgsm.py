"""FGSM (Goodfellow et al. 2015): one step of size eps along the gradient's sign (L-inf) or
its direction (L2)."""

from __future__ import annotations

import torch
from torch import nn

from src.attacks.base import Attack
from src.attacks.gradient import gradient_attack


class FGSM(Attack):
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gradient_attack(model, x, y, self.eps, norm=self.norm)

    def art_attack(self, estimator):
        from art.attacks.evasion import FastGradientMethod

        return FastGradientMethod(estimator, norm=self.norm, eps=self.eps, batch_size=self.batch_size)
