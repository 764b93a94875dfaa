"""Batched, device-resident L-inf gradient attacks in plain PyTorch (FGSM, BIM, PGD).

ART round-trips through numpy per batch; these stay on the model's device and take a
per-image budget, which lets Defense-VAE craft a whole batch over an eps grid in one call.
FGSM is one step of size eps from x; BIM iterates smaller signed steps, projected on the
eps ball and the pixel range; PGD is BIM from a uniform random start in the ball (Madry et
al. 2018). The update is ART's, x + step * sign(grad), so FGSM images match ART's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from src.attacks import parse_norm, require_budget
from src.errors import AdvPurifyError

LINF_ATTACKS = ("fgsm", "bim", "pgd")


def per_image(value: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A budget or step, scalar or one per image, shaped to broadcast over x."""
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return value.expand(len(x)).reshape(-1, *[1] * (x.dim() - 1))


def linf_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float | torch.Tensor,
    steps: int = 1,
    rel_step: float = 1.0,
    random_start: bool = False,
) -> torch.Tensor:
    """Signed-gradient ascent on the cross-entropy inside the L-inf ball of radius eps.

    Runs with gradients on even inside `torch.no_grad`/`inference_mode`, so validation and
    evaluation code may call it; the model's parameters get no gradients.
    """
    if steps < 1:
        raise AdvPurifyError(f"an L-inf attack needs steps >= 1, got {steps}")
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.detach().clone(), y.clone()
        eps = per_image(eps, x)
        step = eps * rel_step
        x_adv = x.clone()
        if random_start:
            x_adv = (x_adv + (2 * torch.rand_like(x) - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            loss = F.cross_entropy(model(x_adv), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = torch.minimum(torch.maximum(x_adv.detach() + step * grad.sign(), x - eps), x + eps)
            x_adv = x_adv.clamp(0, 1)
    return x_adv.detach()


def craft(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | torch.Tensor, steps: int
) -> torch.Tensor:
    """`name` in LINF_ATTACKS with its usual settings: FGSM one step; BIM and PGD `steps`
    steps of 2.5 * eps / steps (Madry et al.'s ratio), PGD from a random start."""
    if name == "fgsm":
        return linf_attack(model, x, y, eps)
    if name in ("bim", "pgd"):
        return linf_attack(model, x, y, eps, steps, 2.5 / steps, random_start=name == "pgd")
    raise AdvPurifyError(f"attack {name!r} has no native L-inf version: choose one of {list(LINF_ATTACKS)}")


class NativeAttack:
    """`attack.backend=native`: FGSM, BIM and PGD (L-inf) with the ART backend's settings.

    The same config keys as `ArtAttack` (`rel_step`, `max_iter`, `num_random_init`), so a config
    switches backend with one override; tests hold both to the same images (FGSM, BIM) or the
    same success rate (PGD, whose random start differs).
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
    ) -> None:
        if name not in LINF_ATTACKS:
            raise AdvPurifyError(
                f"attack {name} has no native backend yet: use attack.backend=art "
                f"(native: {list(LINF_ATTACKS)})"
            )
        if parse_norm(norm) != math.inf:
            raise AdvPurifyError(
                f"native {name} is L-inf only, got attack.norm={norm}: use attack.backend=art"
            )
        require_budget(name, eps)
        if num_random_init > 1:
            raise AdvPurifyError("native PGD takes one random start: set attack.num_random_init=1")
        self.name, self.eps, self.batch_size = name, eps, batch_size
        self.minimal_norm = False
        one_step = name == "fgsm"
        self.steps, self.rel_step = (1, 1.0) if one_step else (max_iter, rel_step)
        self.random_start = name == "pgd" and num_random_init > 0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                linf_attack(model, xb, yb, self.eps, self.steps, self.rel_step, self.random_start)
                for xb, yb in zip(x.split(self.batch_size), y.split(self.batch_size), strict=True)
            ]
        )
