"""Carlini & Wagner (2017), L-inf, their minimal-norm search (`attack=cw_art`), batched on the
model's device.

Per image, a bound tau on |x' - x| (from 1, cut to the best example's L-inf norm times
`decrease_factor` after each round that found a closer example, down to 1/256). In a round,
Adam (`learning_rate`, `max_iter` steps, stopping once c * hinge + sum(relu(|x' - x| - tau))
< 1e-3) runs from x for every c = initial_const * const_factor^k < largest_const. ART's
gradient does not depend on c, so one Adam path per round stands for ART's run per c (see
carlini_wagner.py): the same examples as ART's CarliniLInfMethod.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from src.attacks.base import Attack, at_least_one, positive
from src.attacks.carlini_wagner import CONVERGED, adam_path
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, NON_NEGATIVE, POSITIVE


class CWLinf(Attack):
    minimal_norm = math.inf

    rules = {
        **dict.fromkeys(("max_iter",), COUNT),
        **dict.fromkeys(("learning_rate", "initial_const", "largest_const"), POSITIVE),
        "confidence": NON_NEGATIVE,
    }

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
        self.confidence, self.learning_rate, self.max_iter = confidence, learning_rate, max_iter
        self.decrease_factor, self.const_factor = decrease_factor, const_factor
        self.initial_const, self.largest_const = initial_const, largest_const

    @torch.no_grad()
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The example of smallest L-inf norm found per image; the clean image where none fooled."""
        confidence, learning_rate, max_iter = self.confidence, self.learning_rate, self.max_iter
        initial_const, largest_const, const_factor = self.initial_const, self.largest_const, self.const_factor
        decrease_factor = self.decrease_factor
        consts, const = [], initial_const
        while const < largest_const:
            consts.append(const)
            const *= const_factor
        n = len(x)
        x_adv = x.clone()
        tau = torch.ones(n, device=x.device)
        best_linf = torch.ones(n, device=x.device)
        improving = torch.ones(n, dtype=torch.bool, device=x.device)
        while (active := improving & (tau > 1 / 256)).any():
            index = active.nonzero().squeeze(1)
            points, hinge, excess, fooled = adam_path(
                model, x[index], y[index], tau[index], confidence, learning_rate, max_iter
            )
            rows = torch.arange(len(index), device=x.device)
            found = torch.zeros(len(index), dtype=torch.bool, device=x.device)
            for const in consts:
                # the step at which ART's Adam would stop for this c: the first below CONVERGED
                below = torch.cat([const * hinge + excess < CONVERGED, torch.ones_like(found)[None]])
                stop = below.int().argmax(0).clamp(max=max_iter - 1)
                candidate = points[stop, rows]
                linf = (candidate - x[index]).flatten(1).abs().amax(1)
                better = fooled[stop, rows] & (linf < best_linf[index])
                x_adv[index[better]] = candidate[better]
                best_linf[index[better]] = linf[better]
                found |= better
            improving[index] = found
            reached = (x_adv[index] - x[index]).flatten(1).abs().amax(1)
            tau[index] = torch.minimum(tau[index], reached) * decrease_factor
        return x_adv

    def art_attack(self, estimator):
        from art.attacks.evasion import CarliniLInfMethod

        return CarliniLInfMethod(
            estimator,
            confidence=self.confidence,
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            decrease_factor=self.decrease_factor,
            initial_const=self.initial_const,
            largest_const=self.largest_const,
            const_factor=self.const_factor,
            batch_size=self.batch_size,
            verbose=False,
        )
