"""Per-class EMA codebook update of VQUNet (SPEC 3.3, Algorithm 1), as a Lightning callback.

It runs after every optimizer step because it is a side effect of training, not a gradient
step (STYLE). For each class c present in the batch and each position m, the codebook row
(c, m) moves towards the class-c average of the batch's vectors at m:
theta_(c,m) <- (1 - omega) * theta_(c,m) + omega * avg. Classes absent from the batch keep
their rows. One one-hot matrix product averages all classes and positions at once.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from src.defenses.components.quantizer import Quantizer
from src.runtime.errors import AdvPurifyError

SOURCES = ("quantized", "encoder")


@torch.no_grad()
def ema_update(quantizer: Quantizer, vectors: torch.Tensor, labels: torch.Tensor, omega: float) -> None:
    """Move the rows of the classes in `labels` towards their averages of `vectors` (N x G x H x W)."""
    n, g = vectors.shape[:2]
    c, m = quantizer.num_classes, quantizer.positions
    per_image = vectors.flatten(2).transpose(1, 2).reshape(n, m * g)  # row m*G.. is position m
    onehot = F.one_hot(labels, c).T.to(per_image.dtype)  # C x N
    counts = onehot.sum(1)
    present = counts > 0
    averages = (onehot @ per_image)[present] / counts[present, None]
    book = quantizer.codebook.data.view(c, m * g)
    book[present] = (1 - omega) * book[present] + omega * averages


class EmaCodebookUpdate(pl.Callback):
    def __init__(self, omega: float = 0.2, source: str = "encoder") -> None:
        if source not in SOURCES:
            raise AdvPurifyError(f"defense.ema_source={source} is unknown: choose one of {list(SOURCES)}")
        if not 0 < omega <= 1:
            raise AdvPurifyError(f"defense.ema_omega={omega} must be in (0, 1]")
        self.omega, self.source = omega, source

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch, batch_idx: int
    ) -> None:
        _, labels = batch
        for quantizer, latent in zip(pl_module.quantizers, outputs["latents"], strict=True):
            vectors = latent.q if self.source == "quantized" else latent.a
            ema_update(quantizer, vectors.detach(), labels, self.omega)
