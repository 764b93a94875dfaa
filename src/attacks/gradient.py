"""Steepest ascent on a loss (the cross-entropy unless told), the engine of FGSM, BIM, PGD and
the CW-margin PGD (native backend).

ART round-trips through numpy per batch; this stays on the model's device, and follows ART
step for step, so the two backends give the same numbers at the same settings
(tests/test_native_attacks.py holds them to it).

Gradient attacks ascend the cross-entropy: FGSM is one step of size eps from x; BIM iterates
steps of `rel_step * eps`, projected on the eps ball and the pixel range; PGD is BIM from a
uniform random point of the ball (Madry et al. 2018). An L-inf step is step * sign(grad), an
L2 step is step * grad / ||grad||, ART's updates, so FGSM and BIM images match ART's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from src.attacks import per_image
from src.runtime.errors import AdvPurifyError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, labels) -> summed loss


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="sum")


def unit_l2(v: torch.Tensor) -> torch.Tensor:
    """v / ||v|| per image; a zero vector stays zero (ART's convention)."""
    norms = per_image(v.flatten(1).norm(dim=1), v)
    return torch.where(norms == 0, v, v / norms)


def project(delta: torch.Tensor, eps: torch.Tensor, norm: float) -> torch.Tensor:
    """The nearest point of the eps ball (L-inf) or delta rescaled into it (L2, as ART does)."""
    if norm == math.inf:
        return torch.minimum(torch.maximum(delta, -eps), eps)
    norms = delta.flatten(1).norm(dim=1).reshape(eps.shape)
    return delta * torch.where(norms == 0, torch.ones_like(norms), torch.clamp(eps / norms, max=1))


def random_start(x: torch.Tensor, eps: torch.Tensor, norm: float) -> torch.Tensor:
    """x plus a point drawn uniformly from the eps ball, clipped to the pixel range."""
    if norm == math.inf:
        noise = (2 * torch.rand_like(x) - 1) * eps
    else:
        dims = x[0].numel()
        radius = eps * torch.rand_like(eps) ** (1 / dims)
        noise = unit_l2(torch.randn_like(x)) * radius
    return (x + noise).clamp(0, 1)


def gradient_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    steps: int = 1,
    rel_step: float = 1.0,
    random_init: bool = False,
    norm: float = math.inf,
    loss: Loss = cross_entropy,
) -> torch.Tensor:
    """Steepest ascent on the cross-entropy inside the L-inf or L2 ball of radius eps.

    Runs with gradients on even inside `torch.no_grad`/`inference_mode`, so validation and
    evaluation code may call it; the model's parameters get no gradients.
    """
    if steps < 1:
        raise AdvPurifyError(f"a gradient attack needs steps >= 1, got {steps}")
    direction = torch.sign if norm == math.inf else unit_l2
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.detach().clone(), y.clone()
        eps = per_image(eps, x)
        step = eps * per_image(rel_step, x)
        x_adv = random_start(x, eps, norm) if random_init else x.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss(model(x_adv), y), x_adv)
            x_adv = (x_adv.detach() + step * direction(grad)).clamp(0, 1)
            x_adv = x + project(x_adv - x, eps, norm)
    return x_adv.detach()
