"""BIM (Kurakin et al. 2017): `max_iter` steps of `rel_step * eps` from x, each projected on
the eps ball and the pixel range. The step scales with eps, so one config serves a grid.
`step` instead fixes the step whatever the eps, as cleverhans' `eps_iter` does (its presets,
`attack=bim_cleverhans`, `pgd_cleverhans`); like cleverhans, a step above eps is refused.

In the ART backend BIM is ART's PGD without a random start (ART's BasicIterativeMethod is
L-inf only), so `attack.norm=2` means L2 in both backends.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from src.attacks.base import Attack, at_least_one, positive
from src.attacks.gradient import Loss, cross_entropy, gradient_attack
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, POSITIVE


class BIM(Attack):
    random_starts = 0
    loss: ClassVar[Loss] = staticmethod(cross_entropy)

    rules = {"max_iter": COUNT, "rel_step": POSITIVE, "step": POSITIVE}

    def __init__(
        self, rel_step: float | None = 0.1, max_iter: int = 10, step: float | None = None, **base
    ) -> None:
        super().__init__(**base)
        at_least_one(max_iter=max_iter)
        if (step is None) == (rel_step is None):
            raise AdvPurifyError(
                f"attack.step={step}, attack.rel_step={rel_step}: set exactly one (the other null)"
            )
        if step is None:
            positive(rel_step=rel_step)
        else:
            positive(step=step)
            if not bool((torch.as_tensor(self.eps) >= step).all()):
                raise AdvPurifyError(
                    f"attack.step={step} exceeds eps={self.eps} (cleverhans refuses it too): drop eps "
                    f"below {step} from eval.eps, or set attack.step=null and attack.rel_step"
                )
            rel_step = step / torch.as_tensor(self.eps) if torch.is_tensor(self.eps) else step / self.eps
        self.rel_step, self.max_iter = rel_step, max_iter

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return gradient_attack(
            model, x, y, self.eps, self.max_iter, self.rel_step, self.random_starts > 0, self.norm, self.loss
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
