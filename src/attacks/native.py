"""`attack.backend=native`: batched, device-resident PyTorch attacks with the ART configs' keys.

ART round-trips through numpy per batch (and runs CW-L-inf one image at a time); these stay on
the model's device. Each follows its ART counterpart step for step, so the two backends give
the same numbers at the same settings (tests/test_native_attacks.py holds them to it):
gradient attacks here, CW in src/attacks/carlini_wagner.py, DeepFool in src/attacks/deepfool.py.

Gradient attacks ascend the cross-entropy: FGSM is one step of size eps from x; BIM iterates
steps of `rel_step * eps`, projected on the eps ball and the pixel range; PGD is BIM from a
uniform random point of the ball (Madry et al. 2018). An L-inf step is step * sign(grad), an
L2 step is step * grad / ||grad||, ART's updates, so FGSM and BIM images match ART's.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from src.attacks import BOUNDED, check_attack, keep_fooling, per_image
from src.attacks.carlini_wagner import cw_l2, cw_linf
from src.attacks.deepfool import deepfool
from src.errors import AdvPurifyError


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
        step = eps * rel_step
        x_adv = random_start(x, eps, norm) if random_init else x.clone()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = (x_adv.detach() + step * direction(grad)).clamp(0, 1)
            x_adv = x + project(x_adv - x, eps, norm)
    return x_adv.detach()


def craft(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, steps: int
) -> torch.Tensor:
    """L-inf `name` in BOUNDED with its usual settings: FGSM one step; BIM and PGD `steps`
    steps of 2.5 * eps / steps (Madry et al.'s ratio), PGD from a random start."""
    if name == "fgsm":
        return gradient_attack(model, x, y, eps)
    if name in ("bim", "pgd"):
        return gradient_attack(model, x, y, eps, steps, 2.5 / steps, random_init=name == "pgd")
    raise AdvPurifyError(f"attack {name!r} is not a bounded gradient attack: choose one of {list(BOUNDED)}")


class NativeAttack:
    """Every attack of the ART backend, with its config keys and defaults.

    FGSM/BIM/PGD take `eps`, `norm`, `rel_step`, `max_iter`, `num_random_init`; CW and DeepFool
    take ART's keyword arguments (see carlini_wagner.py, deepfool.py). Each call runs in chunks
    of `batch_size` images, all on the device of x.
    """

    def __init__(
        self,
        name: str,
        eps: float | None = None,
        norm: str | int = "inf",
        batch_size: int = 256,
        rel_step: float = 1.0,
        max_iter: int = 1,
        num_random_init: int = 0,
        overshoot: float = 1e-6,
        **params,
    ) -> None:
        self.name, self.eps, self.norm = name, eps, check_attack(name, norm, eps)
        self.batch_size, self.minimal_norm = batch_size, name not in BOUNDED
        if name in BOUNDED:
            if num_random_init > 1:
                raise AdvPurifyError("native PGD takes one random start: set attack.num_random_init=1")
            if params:
                raise AdvPurifyError(f"attack {name} takes no {sorted(params)}: remove them from attack=")
            one_step = name == "fgsm"
            self.run = partial(
                gradient_attack,
                eps=eps,
                steps=1 if one_step else max_iter,
                rel_step=1.0 if one_step else rel_step,
                random_init=name == "pgd" and num_random_init > 0,
                norm=self.norm,
            )
        else:
            if name == "deepfool":
                self.run = partial(deepfool, max_iter=max_iter, overshoot=overshoot, **params)
            else:
                self.run = partial(cw_linf if name == "cw" else cw_l2, max_iter=max_iter, **params)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = torch.cat(
            [
                self.run(model, xb, yb)
                for xb, yb in zip(x.split(self.batch_size), y.split(self.batch_size), strict=True)
            ]
        )
        if self.minimal_norm:
            x_adv = keep_fooling(model, x_adv, x, y, self.batch_size)
        return x_adv
