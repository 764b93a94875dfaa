"""The adversarial-robustness-toolbox backend (SPEC 4 decision: ART is the reference).

A bounded attack's step is `rel_step * eps`, so one config serves a whole eps grid. BIM is
PGD without a random start (ART's BasicIterativeMethod, which is L-inf only), so that
`attack.norm=2` means L2 for BIM too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from art.attacks.evasion import (
    CarliniL2Method,
    CarliniLInfMethod,
    DeepFool,
    FastGradientMethod,
    ProjectedGradientDescent,
)
from art.estimators.classification import PyTorchClassifier
from torch import nn

from src.attacks import MINIMAL_NORM, check_attack, keep_fooling


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
        self.name, self.eps, self.norm = name, eps, check_attack(name, norm, eps)
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
                common["num_random_init"] = 0
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
