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
        """The closest example found per image; the clean image where none fooled the model."""
        search = Search(model, x, y, self.confidence, self.initial_const)
        w_clean = to_tanh(x)
        for _ in range(self.binary_search_steps):
            if not (search.c < C_UPPER_BOUND).any():
                break
            search.next_constants(self.descend(search, w_clean))
        return search.best

    def descend(self, search: Search, w_clean: torch.Tensor) -> torch.Tensor:
        """`max_iter` line-searched gradient steps at the current constants, from the clean image;
        which images succeeded at any step."""
        n, x = len(search.x), search.x
        lr = torch.full((n,), self.learning_rate, device=x.device)
        w, x_adv = w_clean.clone(), x.clone()
        search.evaluate(torch.ones(n, dtype=torch.bool, device=x.device), w)
        success = search.loss - search.l2 <= 0
        ever_succeeded = success.clone()
        for _ in range(self.max_iter):
            search.keep_improved(success, x_adv)
            active = (search.c < C_UPPER_BOUND) & (lr > 0)
            if not active.any():
                break
            descent = torch.zeros_like(w)
            descent[active] = -objective_gradient(
                search.model, w[active], x[active], search.y[active], search.c[active]
            )
            best_lr = self.line_search(search, active, w, lr, descent)
            update = active & (best_lr > 0)
            if update.any():
                w[update] += per_image(best_lr[update], descent[update]) * descent[update]
                x_adv[update] = from_tanh(w[update])
                search.evaluate(update, w[update])
                success = search.loss - search.l2 <= 0
                ever_succeeded |= success
        search.keep_improved(success, x_adv)
        return ever_succeeded

    def line_search(
        self, search: Search, active: torch.Tensor, w: torch.Tensor, lr: torch.Tensor, descent: torch.Tensor
    ) -> torch.Tensor:
        """ART's line search: halve each active image's step while its loss does not fall, then
        double it while it keeps falling; `lr` is updated in place, the best step returned."""
        prev_loss, best_loss = search.loss.clone(), search.loss.clone()
        best_lr = torch.zeros(len(w), device=w.device)
        halvings = torch.zeros(len(w), device=w.device)
        for _ in range(self.max_halving):
            halve = active & (search.loss >= prev_loss)
            if not halve.any():
                break
            search.trial(halve, w, lr, descent, best_lr, best_loss)
            lr[halve] /= 2
            halvings[halve] += 1
        lr[active] *= 2
        for _ in range(self.max_doubling):
            double = active & (halvings == 1) & (search.loss <= best_loss)
            if not double.any():
                break
            lr[double] *= 2
            search.trial(double, w, lr, descent, best_lr, best_loss)
        lr[halvings == 1] /= 2
        return best_lr

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


class Search:
    """The state of one CW-L2 search over a batch, as ART keeps it: per image the constant c
    and its bisection bounds, the closest success so far, and `l2` and `loss` of the last point
    *evaluated* (a line-search trial included): the next line search compares against them."""

    def __init__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, confidence: float, c: float
    ) -> None:
        n, device = len(x), x.device
        self.model, self.x, self.y, self.confidence = model, x, y, confidence
        self.c = torch.full((n,), c, device=device)
        self.lower = torch.zeros(n, device=device)
        self.doubling = torch.ones(n, dtype=torch.bool, device=device)
        self.best_l2 = torch.full((n,), float("inf"), device=device)
        self.best = x.clone()
        self.l2 = torch.zeros(n, device=device)
        self.loss = torch.zeros(n, device=device)

    def evaluate(self, mask: torch.Tensor, w: torch.Tensor) -> None:
        """l2 and loss of the points w (in tanh space) for the images in mask."""
        x_new = from_tanh(w)
        hinge = (margin(self.model(x_new), self.y[mask]) + self.confidence).clamp_min(0)
        self.l2[mask] = (x_new - self.x[mask]).flatten(1).pow(2).sum(1)
        self.loss[mask] = self.c[mask] * hinge + self.l2[mask]

    def keep_improved(self, success: torch.Tensor, x_adv: torch.Tensor) -> None:
        improved = success & (self.l2 < self.best_l2)
        self.best_l2[improved] = self.l2[improved]
        self.best[improved] = x_adv[improved]

    def trial(self, mask, w, lr, descent, best_lr, best_loss) -> None:
        """Evaluate a line-search step for the images in mask; remember the step if it is best."""
        self.evaluate(mask, w[mask] + per_image(lr[mask], descent[mask]) * descent[mask])
        better = self.loss < best_loss
        best_lr[better], best_loss[better] = lr[better], self.loss[better]

    def next_constants(self, ever_succeeded: torch.Tensor) -> None:
        """ART's update of the search, in its order (the lower bound takes the *new* c on failure)."""
        c, lower = self.c, self.lower
        self.doubling[ever_succeeded] = False
        c[ever_succeeded] = ((lower + c) / 2)[ever_succeeded]
        failed = ~ever_succeeded
        c[failed & self.doubling] *= 2
        c[failed & ~self.doubling] += ((c - lower) / 2)[failed & ~self.doubling]
        lower[failed] = c[failed]
