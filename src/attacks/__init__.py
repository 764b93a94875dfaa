"""Attacks: one class per backend, `attack(model, x, y) -> x_adv` with the budget set at construction.

`attack.backend` picks it: `art` (adversarial-robustness-toolbox, the reference) or `native`
(batched, device-resident PyTorch: src/attacks/native.py). Both take the same config keys.

Norm-bounded attacks (fgsm, bim, pgd) take eps directly. CW (L-inf and L2) and DeepFool are
minimal-norm attacks with no budget: they are crafted once, kept only where they fool the
model, and `within_budget` keeps an example only where its perturbation fits the eps ball,
i.e. robust accuracy at radius eps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from src.errors import AdvPurifyError

BACKENDS = ("art", "native")
BOUNDED = ("fgsm", "bim", "pgd")
MINIMAL_NORM = {"cw": float("inf"), "cw_l2": 2.0, "deepfool": 2.0}  # the norm each one minimises


def parse_norm(norm: str | int | float) -> float:
    if str(norm) in ("inf", "linf"):
        return float("inf")
    if str(norm) in ("2", "l2", "2.0"):
        return 2.0
    raise AdvPurifyError(f"attack.norm={norm} is not supported: use inf or 2")


def require_budget(name: str, eps: float | None) -> float:
    """A norm-bounded attack's eps, which every backend needs > 0."""
    if eps is None or eps <= 0:
        raise AdvPurifyError(f"attack {name} needs eps > 0, got {eps}")
    return eps


def check_attack(name: str, norm: str | int | float, eps: float | None) -> float:
    """The parsed norm, once the name, norm and budget make sense together (every backend)."""
    if name not in (*BOUNDED, *MINIMAL_NORM):
        raise AdvPurifyError(f"attack {name} is unknown: choose one of {[*BOUNDED, *MINIMAL_NORM]}")
    parsed = parse_norm(norm)
    if name in BOUNDED:
        require_budget(name, eps)
    elif parsed != MINIMAL_NORM[name]:
        raise AdvPurifyError(
            f"attack {name} minimises the {MINIMAL_NORM[name]:g}-norm: set attack.norm={MINIMAL_NORM[name]:g}"
        )
    return parsed


def per_image(value: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar or one value per image (a budget, a step, a mask), shaped to broadcast over the
    batch x; numbers take x's dtype, masks stay boolean."""
    is_mask = torch.is_tensor(value) and value.dtype == torch.bool
    value = torch.as_tensor(value, dtype=None if is_mask else x.dtype, device=x.device)
    return value.expand(len(x)).reshape(-1, *[1] * (x.dim() - 1))


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor, norm: float) -> torch.Tensor:
    """Per-image norm of x_adv - x."""
    return (x_adv - x).flatten(1).norm(p=norm, dim=1)


def within_budget(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: float) -> torch.Tensor:
    """Keep x_adv where its perturbation fits the eps ball, the clean image elsewhere."""
    fits = perturbation_norms(x_adv, x, norm) <= eps * (1 + 1e-6)
    return torch.where(per_image(fits, x), x_adv, x)


@torch.no_grad()
def keep_fooling(
    model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Keep x_adv only where it fools `model`, the clean image elsewhere.

    CW and DeepFool ignore the label of an input the model already gets wrong and may push
    it across a boundary *into* its true class; left in, such a step would make an attack
    raise accuracy (seen here with ART's DeepFool: 50% clean -> 56% "adversarial").
    """
    wrong = torch.cat([model(xb).argmax(1) for xb in x_adv.split(batch_size)]) != y
    return torch.where(per_image(wrong, x), x_adv, x)


def make_attack(backend: str = "native", **settings: Any):
    if backend == "art":
        from src.attacks.art import ArtAttack

        return ArtAttack(**settings)
    if backend == "native":
        from src.attacks.native import NativeAttack

        return NativeAttack(**settings)
    raise AdvPurifyError(f"attack.backend={backend} is unknown: choose one of {list(BACKENDS)}")
