"""The adversarial-robustness-toolbox adapter (`attack.backend=art`; SPEC 4: ART is the reference).

Wraps the model in ART's estimator and runs the attack's ART counterpart (`Attack.art_attack`)
with the same settings; numpy in, numpy out, so it is the slow path, kept for agreement.
"""

from __future__ import annotations

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from src.attacks.base import Attack


def run_art(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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
    x_adv = attack.art_attack(estimator).generate(x_np, y=y.cpu().numpy())
    return torch.from_numpy(x_adv).to(x.device, x.dtype)
