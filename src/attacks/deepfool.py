"""DeepFool (Moosavi-Dezfooli et al. 2016), L2, batched on the model's device.

Follows ART 1.20's DeepFool step for step: from the model's own prediction k (not the label),
each step moves every still-unflipped image onto the linearised nearest boundary,
r = |f_l - f_k| / ||grad f_l - grad f_k||² * (grad f_l - grad f_k) for the closest class l,
clipped to [0, 1], until the prediction changes or `max_iter` steps; the total perturbation is
then scaled by 1 + `overshoot` and clipped. Only the images still unflipped are recomputed.

`nb_grads` limits the candidate classes l to the nb_grads most likely at the clean image, per
image (ART takes the union of those sets over the whole input); with nb_grads = the number of
classes (our configs) the two are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from src.attacks import per_image
from src.attacks.base import Attack, at_least_one
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, NON_NEGATIVE

TOL = 10e-8  # ART's guard against a zero gradient difference


def deepfool(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    max_iter: int = 100,
    overshoot: float = 1e-6,
    nb_grads: int = 10,
) -> torch.Tensor:
    """The DeepFool example per image (y is unused: DeepFool flips the model's own prediction)."""
    with torch.no_grad():
        logits = model(x)
    classes = logits.topk(min(nb_grads, logits.shape[1]), dim=1).indices  # column 0: the prediction
    x_adv = x.clone()
    active = torch.arange(len(x), device=x.device)
    for _ in range(max_iter):
        logit_gaps, grad_gaps = gaps(model, x_adv[active], classes[active])
        distance = logit_gaps.abs() / (grad_gaps.flatten(2).norm(dim=2) + TOL)
        nearest = distance.argmin(1)
        rows = torch.arange(len(active), device=x.device)
        gap, direction = logit_gaps[rows, nearest], grad_gaps[rows, nearest]
        scale = gap.abs() / (direction.flatten(1).norm(dim=1).square() + TOL)
        x_adv[active] = (x_adv[active] + per_image(scale, direction) * direction).clamp(0, 1)
        with torch.no_grad():
            unflipped = model(x_adv[active]).argmax(1) == classes[active, 0]
        active = active[unflipped]
        if len(active) == 0:
            break
    return (x + (1 + overshoot) * (x_adv - x)).clamp(0, 1)


def gaps(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f_l - f_k and grad f_l - grad f_k for each candidate l (classes[:, 1:]) against the
    prediction k (classes[:, 0]): shapes (n, l) and (n, l, *x.shape[1:])."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x.clone().requires_grad_(True)
        logits = model(x)
        picked = logits.gather(1, classes)
        logit_gaps = picked[:, 1:] - picked[:, :1]
        grads = [
            torch.autograd.grad(logit_gaps[:, j].sum(), x, retain_graph=j < logit_gaps.shape[1] - 1)[0]
            for j in range(logit_gaps.shape[1])
        ]
    return logit_gaps.detach(), torch.stack(grads, 1)


class DeepFool(Attack):
    """DeepFool as an attack: minimises the L2 norm; `overshoot` is ART's `epsilon`."""

    minimal_norm = 2.0

    rules = {"max_iter": COUNT, "nb_grads": COUNT, "overshoot": NON_NEGATIVE}

    def __init__(self, max_iter: int = 100, overshoot: float = 1e-6, nb_grads: int = 10, **base) -> None:
        super().__init__(**base)
        at_least_one(max_iter=max_iter)
        if isinstance(nb_grads, bool) or not isinstance(nb_grads, int) or nb_grads < 2:
            raise AdvPurifyError(f"attack.nb_grads={nb_grads!r}: DeepFool needs nb_grads >= 2")
        if not overshoot >= 0:
            raise AdvPurifyError(f"attack.overshoot={overshoot!r}: it must be >= 0")
        self.max_iter, self.overshoot, self.nb_grads = max_iter, overshoot, nb_grads

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return deepfool(model, x, y, self.max_iter, self.overshoot, self.nb_grads)

    def art_attack(self, estimator):
        from art.attacks.evasion import DeepFool as ArtDeepFool

        return ArtDeepFool(
            estimator,
            max_iter=self.max_iter,
            epsilon=self.overshoot,
            nb_grads=self.nb_grads,
            batch_size=self.batch_size,
            verbose=False,
        )
