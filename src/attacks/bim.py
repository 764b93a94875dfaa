"""BIM (Kurakin et al. 2017): `max_iter` steps of `rel_step * eps` from x, each projected on
the eps ball and the pixel range. The step scales with eps, so one config serves a grid.

In the ART backend BIM is ART's PGD without a random start (ART's BasicIterativeMethod is
L-inf only), so `attack.norm=2` means L2 in both backends.
"""

from __future__ import annotations

import torch
from torch import nn

from src.attacks.base import Attack, at_least_one, positive
from src.attacks.gradient import gradient_attack


class BIM(Attack):
    random_starts = 0

    def __init__(self, rel_step: float = 0.1, max_iter: int = 10, **base) -> None:
        super().__init__(**base)
        positive(rel_step=rel_step)
        at_least_one(max_iter=max_iter)
        self.rel_step, self.max_iter = rel_step, max_iter

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gradient_attack(
            model, x, y, self.eps, self.max_iter, self.rel_step, self.random_starts > 0, self.norm
        )

    def art_attack(self, estimator):
        from art.attacks.evasion import ProjectedGradientDescent

        return ProjectedGradientDescent(
            estimator,
            norm=self.norm,
            eps=self.eps,
            eps_step=self.rel_step * self.eps,
            max_iter=self.max_iter,
            num_random_init=self.random_starts,
            batch_size=self.batch_size,
            verbose=False,
        )
