"""The adversarial-robustness-toolbox adapter (`attack.backend=art`; SPEC 4: ART is the reference).

Wraps the model in ART's estimator and runs the attack's ART counterpart (`Attack.art_attack`)
with the same settings; numpy in, numpy out, so it is the slow path, kept for agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from art.estimators.classification import PyTorchClassifier
from torch import nn


def estimator(
    model: nn.Module,
    input_shape: Sequence[int],
    nb_classes: int,
    device: torch.device,
    preprocessing_defences: list[PreprocessorPyTorch] | None = None,
) -> PyTorchClassifier:
    """ART's PyTorchClassifier on [0, 1] pixels, with the settings ART does not default well
    (NOTES: nb_classes, clip_values and verbose must be given)."""
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(input_shape),
        nb_classes=nb_classes,
        clip_values=(0.0, 1.0),
        preprocessing_defences=preprocessing_defences,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


def run_art(attack: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`attack.art_attack(estimator)` (src/attacks/base.py) run on the model's ART estimator."""
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    art_model = estimator(model, x.shape[1:], num_classes, x.device)
    x_np = x.detach().cpu().numpy().astype(np.float32)
    x_adv = attack.art_attack(art_model).generate(x_np, y=y.cpu().numpy())
    return torch.from_numpy(x_adv).to(x.device, x.dtype)
