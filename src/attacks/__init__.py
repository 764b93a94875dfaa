"""Attacks, one class a file over the thin base in base.py: fgsm.py, bim.py, pgd.py, cw.py,
cw_l2.py, deepfool.py; art.py adapts any of them to ART (`attack.backend=art`).

This module holds what every attack and the evaluator share: the norm, per-image broadcasts,
and the minimal-norm bookkeeping. CW (L-inf and L2) and DeepFool take no budget: they are
crafted once, kept only where they fool the model, and `within_budget` keeps an example only
where its perturbation fits the eps ball, i.e. robust accuracy at radius eps.
"""

from __future__ import annotations

import torch
from torch import nn

from src.runtime.errors import AdvPurifyError


def parse_norm(norm: str | int | float) -> float:
    if str(norm) in ("inf", "linf"):
        return float("inf")
    if str(norm) in ("2", "l2", "2.0"):
        return 2.0
    raise AdvPurifyError(f"attack.norm={norm} is not supported: use inf or 2")


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
