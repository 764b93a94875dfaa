"""The adversarial-robustness-toolbox adapter (`attack.backend=art`; SPEC 4: ART is the reference).

Wraps the model in ART's estimator and runs the attack's ART counterpart (`Attack.art_attack`)
with the same settings; numpy in, numpy out, so it is the slow path, kept for agreement.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from src.art_estimator import estimator
from src.attacks.base import Attack


def run_art(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    art_model = estimator(model, x.shape[1:], num_classes, x.device)
    x_np = x.detach().cpu().numpy().astype(np.float32)
    x_adv = attack.art_attack(art_model).generate(x_np, y=y.cpu().numpy())
    return torch.from_numpy(x_adv).to(x.device, x.dtype)
