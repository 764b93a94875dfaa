"""Carlini & Wagner (2017), L2 and L-inf, batched on the model's device.

ART is the reference backend (SPEC 4), so both follow ART 1.20's CarliniL2Method and
CarliniLInfMethod step for step rather than the paper's code, and give the same examples at
the same settings. Both optimise in tanh space, x = (tanh(w) + 1) / 2, which keeps pixels in
[0, 1], and both descend ART's gradient: that of the logit margin z_y - max_{j != y} z_j
*without* its hinge max(., -confidence), so the margin keeps falling after the label flips.

- L2: per image, a binary search on the weight c of the margin (x2 until the attack first
  succeeds, then bisection). For each c, `max_iter` gradient steps on c * margin + ||x' - x||²,
  each with ART's line search: halve the step (up to `max_halving` times) until the loss falls,
  then double it (up to `max_doubling`) while it keeps falling. The closest success is kept.
- L-inf: per image, a bound tau on |x' - x| (from 1, cut to the best example's L-inf norm
  times `decrease_factor` after each round that found a closer example, down to 1/256). In a
  round, Adam (`learning_rate`, `max_iter` steps, stopping once c * hinge + sum(relu(|x' - x|
  - tau)) < 1e-3) runs from x for every c = initial_const * const_factor^k < largest_const.

ART's L-inf gradient does not depend on c: c enters only the stopping test. So the Adam path
from x in a round is the same for every c, and we run it once and read off where each c would
have stopped: the same examples as ART's |c grid| runs (21 at the defaults) for the cost of one.

The attack classes (src/attacks/cw.py, cw_l2.py) check the settings before these run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.attacks import per_image

TANH_SMOOTHER = 0.999999  # ART's: keeps arctanh finite at pixels 0 and 1
C_UPPER_BOUND = 10e10  # ART's: the L2 binary search gives up on an image beyond this c
CONVERGED = 1e-3  # ART's Adam stops once the L-inf loss is below this
ADAM = (0.9, 0.999, 1e-8)  # ART's beta_1, beta_2, epsilon


def to_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh((2 * x - 1) * TANH_SMOOTHER)


def from_tanh(w: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(w) + 1) / 2


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j != y} z_j per image: negative once the model no longer predicts y."""
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return logits.gather(1, y[:, None]).squeeze(1) - other


@torch.no_grad()
def cw_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    confidence: float = 0.0,
    learning_rate: float = 0.01,
    binary_search_steps: int = 10,
    max_iter: int = 10,
    initial_const: float = 0.01,
    max_halving: int = 5,
    max_doubling: int = 5,
) -> torch.Tensor:
    """The closest example found per image; the clean image where none fooled the model.

    The arrays `l2` and `loss` hold the last point *evaluated* for each image, a line-search
    trial included, as ART's do: its next line search compares against them.
    """
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
    for _ in range(binary_search_steps):
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


def objective_gradient(
    model: nn.Module, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """d/dw of c * margin + ||x' - x||², ART's CW-L2 gradient (no hinge on the margin)."""
    with torch.inference_mode(False), torch.enable_grad():
        w = w.clone().requires_grad_(True)
        x_new = from_tanh(w)
        objective = c * margin(model(x_new), y) + (x_new - x).flatten(1).pow(2).sum(1)
        (grad,) = torch.autograd.grad(objective.sum(), w)
    return grad


@torch.no_grad()
def cw_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    confidence: float = 0.0,
    learning_rate: float = 0.01,
    max_iter: int = 10,
    decrease_factor: float = 0.9,
    initial_const: float = 1e-5,
    largest_const: float = 20.0,
    const_factor: float = 2.0,
) -> torch.Tensor:
    """The example of smallest L-inf norm found per image; the clean image where none fooled."""
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


def adam_path(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    tau: torch.Tensor,
    confidence: float,
    learning_rate: float,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ART's Adam from x on margin + sum(relu(|x' - x| - tau)), run for all max_iter steps.

    Returns, for steps 1..max_iter: the points (steps, n, ...), the hinge max(margin +
    confidence, 0), the excess sum(relu(|x' - x| - tau)), and whether the point fools the model.
    """
    beta_1, beta_2, eps = ADAM
    tau = per_image(tau, x)
    w = to_tanh(x)
    m = torch.zeros_like(w)
    v = torch.zeros_like(w)
    points, hinges, excesses, fooled = [], [], [], []
    with torch.inference_mode(False), torch.enable_grad():
        for step in range(max_iter + 1):
            w = w.detach().requires_grad_(step < max_iter)
            x_new = from_tanh(w)
            logits = model(x_new)
            margins = margin(logits, y)
            excess = (x_new - x).abs().sub(tau).clamp_min(0).flatten(1).sum(1)
            if step > 0:
                points.append(x_new.detach())
                hinges.append((margins + confidence).clamp_min(0).detach())
                excesses.append(excess.detach())
                fooled.append(logits.argmax(1) != y)
            if step == max_iter:
                break
            (grad,) = torch.autograd.grad((margins + excess).sum(), w)
            m = beta_1 * m + (1 - beta_1) * grad
            v = beta_2 * v + (1 - beta_2) * grad.square()
            m_hat = m / (1 - beta_1 ** (step + 1))
            v_hat = v / (1 - beta_2 ** (step + 1))
            w = w.detach() - learning_rate * m_hat / (v_hat.sqrt() + eps)
    return torch.stack(points), torch.stack(hinges), torch.stack(excesses), torch.stack(fooled)
