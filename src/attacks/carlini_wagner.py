"""What Carlini & Wagner (2017)'s two attacks share (cw.py: L-inf, cw_l2.py: L2).

ART is the reference backend (SPEC 4), so both follow ART 1.20's CarliniL2Method and
CarliniLInfMethod step for step rather than the paper's code, and give the same examples at
the same settings. Both optimise in tanh space, x = (tanh(w) + 1) / 2, which keeps pixels in
[0, 1], and both descend ART's gradient: that of the logit margin z_y - max_{j != y} z_j
*without* its hinge max(., -confidence), so the margin keeps falling after the label flips.

ART's L-inf gradient does not depend on c: c enters only the stopping test. So the Adam path
from x in a round is the same for every c, and `adam_path` runs it once for the caller to read
off where each c would have stopped: the same examples as ART's |c grid| runs (21 at the
defaults) for the cost of one.
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
