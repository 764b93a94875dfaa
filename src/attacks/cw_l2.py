"""Carlini & Wagner (2017), L2 (`attack=cw_l2`), batched on the model's device.

Per image, a binary search on the weight c of the margin (x2 until the attack first succeeds,
then bisection). For each c, `max_iter` gradient steps on c * margin + ||x' - x||², each with
ART's line search: halve the step (up to `max_halving` times) until the loss falls, then
double it (up to `max_doubling`) while it keeps falling. The closest success is kept.
ART's reference (CarliniL2Method) is followed step for step; shared parts: carlini_wagner.py.
"""

from __future__ import annotations

import torch
from torch import nn

from src.attacks import per_image
from src.attacks.base import Attack, at_least_one, positive
from src.attacks.carlini_wagner import C_UPPER_BOUND, from_tanh, margin, objective_gradient, to_tanh
from src.runtime.rules import COUNT, NON_NEGATIVE, POSITIVE


class CWL2(Attack):
    minimal_norm = 2.0

    rules = {
        **dict.fromkeys(("max_iter", "binary_search_steps"), COUNT),
        **dict.fromkeys(("learning_rate", "initial_const"), POSITIVE),
        "confidence": NON_NEGATIVE,
    }

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
        self.confidence, self.learning_rate, self.initial_const = confidence, learning_rate, initial_const
        self.binary_search_steps, self.max_iter = binary_search_steps, max_iter
        self.max_halving, self.max_doubling = max_halving, max_doubling

    @torch.no_grad()
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The closest example found per image; the clean image where none fooled the model.

        The arrays `l2` and `loss` hold the last point *evaluated* for each image, a line-search
        trial included, as ART's do: its next line search compares against them.
        """
        confidence, learning_rate, initial_const = self.confidence, self.learning_rate, self.initial_const
        max_iter, max_halving, max_doubling = self.max_iter, self.max_halving, self.max_doubling
        n = len(x)
        w_clean = to_tanh(x)
        c = torch.full((n,), initial_const, device=x.device)
        lower = torch.zeros(n, device=x.device)
        doubling = torch.ones(n, dtype=torch.bool, device=x.device)
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        best = x.clone()
        l2 = torch.zeros(n, device=x.device)
        loss = torch.zeros(n, device=x.device)

        def evaluate(mask: torch.Tensor, w: torch.Tensor) -> None:
            """l2 and loss of the points w (in tanh space) for the images in mask."""
            x_new = from_tanh(w)
            hinge = (margin(model(x_new), y[mask]) + confidence).clamp_min(0)
            l2[mask] = (x_new - x[mask]).flatten(1).pow(2).sum(1)
            loss[mask] = c[mask] * hinge + l2[mask]

        def keep_improved(success: torch.Tensor, x_adv: torch.Tensor) -> None:
            improved = success & (l2 < best_l2)
            best_l2[improved] = l2[improved]
            best[improved] = x_adv[improved]

        def trial(mask, w, lr, descent, best_lr, best_loss) -> None:
            """Evaluate a line-search step for the images in mask; remember the step if it is best."""
            evaluate(mask, w[mask] + per_image(lr[mask], descent[mask]) * descent[mask])
            better = loss < best_loss
            best_lr[better], best_loss[better] = lr[better], loss[better]

        everyone = torch.ones(n, dtype=torch.bool, device=x.device)
        for _ in range(self.binary_search_steps):
            if not (c < C_UPPER_BOUND).any():
                break
            lr = torch.full((n,), learning_rate, device=x.device)
            w, x_adv = w_clean.clone(), x.clone()
            evaluate(everyone, w)
            success = loss - l2 <= 0
            ever_succeeded = success.clone()
            for _ in range(max_iter):
                keep_improved(success, x_adv)
                active = (c < C_UPPER_BOUND) & (lr > 0)
                if not active.any():
                    break
                descent = torch.zeros_like(w)
                descent[active] = -objective_gradient(model, w[active], x[active], y[active], c[active])
                prev_loss, best_loss = loss.clone(), loss.clone()
                best_lr = torch.zeros(n, device=x.device)

                halvings = torch.zeros(n, device=x.device)
                for _ in range(max_halving):
                    halve = active & (loss >= prev_loss)
                    if not halve.any():
                        break
                    trial(halve, w, lr, descent, best_lr, best_loss)
                    lr[halve] /= 2
                    halvings[halve] += 1
                lr[active] *= 2
                for _ in range(max_doubling):
                    double = active & (halvings == 1) & (loss <= best_loss)
                    if not double.any():
                        break
                    lr[double] *= 2
                    trial(double, w, lr, descent, best_lr, best_loss)
                lr[halvings == 1] /= 2
                update = active & (best_lr > 0)
                if update.any():
                    w[update] += per_image(best_lr[update], descent[update]) * descent[update]
                    x_adv[update] = from_tanh(w[update])
                    evaluate(update, w[update])
                    success = loss - l2 <= 0
                    ever_succeeded |= success
            keep_improved(success, x_adv)
            # ART's update of the search, in its order (the lower bound takes the *new* c on failure)
            doubling[ever_succeeded] = False
            c[ever_succeeded] = ((lower + c) / 2)[ever_succeeded]
            failed = ~ever_succeeded
            c[failed & doubling] *= 2
            c[failed & ~doubling] += ((c - lower) / 2)[failed & ~doubling]
            lower[failed] = c[failed]
        return best

    def art_attack(self, estimator):
        from art.attacks.evasion import CarliniL2Method

        return CarliniL2Method(
            estimator,
            confidence=self.confidence,
            learning_rate=self.learning_rate,
            binary_search_steps=self.binary_search_steps,
            max_iter=self.max_iter,
            initial_const=self.initial_const,
            max_halving=self.max_halving,
            max_doubling=self.max_doubling,
            batch_size=self.batch_size,
            verbose=False,
        )
