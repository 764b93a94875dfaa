"""The public API's `art_classifier` as an ART estimator, whose purifier is ART preprocessing
so ART's own attacks are adaptive (they differentiate through the purifier as it declares, SPEC 4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from src.attacks.art import estimator
from src.evaluation.threats import declared_purify


class PurifierPreprocessor(PreprocessorPyTorch):
    """A purifier as ART preprocessing at predict time. ART differentiates a PyTorch
    preprocessor by autograd through `forward` (and `estimate_forward`, `estimate_gradient`
    for mixed chains), so `forward` carries the declared gradient: through `purify`, or BPDA's
    identity, whose backward pass is the identity."""

    def __init__(self, purifier: nn.Module, device: torch.device) -> None:
        super().__init__(
            device_type="gpu" if device.type == "cuda" else "cpu",
            is_fitted=True,
            apply_fit=False,
            apply_predict=True,
        )
        self.purifier = purifier

    def forward(self, x: torch.Tensor, y: Any | None = None) -> tuple[torch.Tensor, Any | None]:
        return declared_purify(self.purifier, x), y


def defended_estimator(
    classifier: nn.Module, purifier: nn.Module, input_shape: Sequence[int], device: torch.device
) -> PyTorchClassifier:
    """The classifier as ART's estimator, the purifier as its preprocessing."""
    with torch.no_grad():
        nb_classes = classifier(torch.zeros(1, *input_shape, device=device)).shape[1]
    return estimator(classifier, input_shape, nb_classes, device, [PurifierPreprocessor(purifier, device)])
