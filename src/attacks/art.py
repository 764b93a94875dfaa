"""The adversarial-robustness-toolbox backend (SPEC 4 decision: ART is the reference).

Norm-bounded attacks (fgsm, bim, pgd) take eps directly; their step is `rel_step * eps`, so
one config serves a whole eps grid. CW (L-inf and L2) and DeepFool are minimal-norm attacks
with no budget: they are crafted once, kept only where they fool the model, and
`within_budget` keeps an example only where its perturbation fits the eps ball, i.e.
robust accuracy at radius eps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from art.attacks.evasion import (
    BasicIterativeMethod,
    CarliniL2Method,
    CarliniLInfMethod,
    DeepFool,
    FastGradientMethod,
    ProjectedGradientDescent,
)
from art.estimators.classification import PyTorchClassifier
from torch import nn

from src.attacks import parse_norm, require_budget
from src.errors import AdvPurifyError

BOUNDED = {"fgsm", "bim", "pgd"}
MINIMAL_NORM = {"cw", "cw_l2", "deepfool"}


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor, norm: float) -> torch.Tensor:
    """Per-image norm of x_adv - x."""
    return (x_adv - x).flatten(1).norm(p=norm, dim=1)


def within_budget(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: float) -> torch.Tensor:
    """Keep x_adv where its perturbation fits the eps ball, the clean image elsewhere."""
    fits = perturbation_norms(x_adv, x, norm) <= eps * (1 + 1e-6)
    return torch.where(fits.view(-1, *[1] * (x.dim() - 1)), x_adv, x)


@torch.no_grad()
def keep_fooling(
    model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Keep x_adv only where it fools `model`, the clean image elsewhere.

    ART's CW and DeepFool ignore the label of an input the model already gets wrong and
    may push it across a boundary *into* its true class; left in, such a step would make
    an attack raise accuracy (seen here with DeepFool: 50% clean -> 56% "adversarial").
    """
    wrong = torch.cat([model(xb).argmax(1) for xb in x_adv.split(batch_size)]) != y
    return torch.where(wrong.view(-1, *[1] * (x.dim() - 1)), x_adv, x)


class ArtAttack:
    def __init__(
        self,
        name: str,
        eps: float | None = None,
        norm: str | int = "inf",
        batch_size: int = 256,
        rel_step: float | None = None,
        overshoot: float | None = None,
        **params: Any,
    ) -> None:
        if name not in BOUNDED | MINIMAL_NORM:
            raise AdvPurifyError(
                f"attack {name} has no ART backend: choose one of {sorted(BOUNDED | MINIMAL_NORM)}"
            )
        if name in BOUNDED:
            require_budget(name, eps)
        self.name, self.eps, self.norm = name, eps, parse_norm(norm)
        self.batch_size, self.rel_step, self.overshoot, self.params = (
            batch_size,
            rel_step,
            overshoot,
            params,
        )

    @property
    def minimal_norm(self) -> bool:
        return self.name in MINIMAL_NORM

    def _build(self, estimator: PyTorchClassifier):
        if self.name == "fgsm":
            return FastGradientMethod(estimator, norm=self.norm, eps=self.eps, batch_size=self.batch_size)
        common = {"batch_size": self.batch_size, "verbose": False, **self.params}
        if self.name in ("bim", "pgd"):
            step = {"eps": self.eps, "eps_step": self.rel_step * self.eps}
            if self.name == "bim":
                return BasicIterativeMethod(estimator, **step, **common)
            return ProjectedGradientDescent(estimator, norm=self.norm, **step, **common)
        if self.name == "cw":
            return CarliniLInfMethod(estimator, **common)
        if self.name == "cw_l2":
            return CarliniL2Method(estimator, **common)
        return DeepFool(estimator, epsilon=self.overshoot, **common)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        estimator = PyTorchClassifier(
            model=model,
            loss=nn.CrossEntropyLoss(),
            input_shape=tuple(x.shape[1:]),
            nb_classes=num_classes,
            clip_values=(0.0, 1.0),
            device_type="gpu" if x.is_cuda else "cpu",
        )
        x_np = x.detach().cpu().numpy().astype(np.float32)
        x_adv = torch.from_numpy(self._build(estimator).generate(x_np, y=y.cpu().numpy())).to(
            x.device, x.dtype
        )
        if self.minimal_norm:
            x_adv = keep_fooling(model, x_adv, x, y, self.batch_size)
        return x_adv
