"""What every defense promises the rest of the framework (STYLE: small, honest interfaces).

A defense purifies pixels into pixels of the same shape, and declares how an attack may
differentiate through it (`gradient`: exact, straight_through or identity BPDA) and
whether it is random (then EOT applies). Eval and the threat models read nothing else.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from torch import nn

from src.checkpoints import SelfDescribing

Gradient = Literal["exact", "straight_through", "identity"]


@runtime_checkable
class Purifier(Protocol):
    name: str
    gradient: Gradient
    stochastic: bool

    def purify(self, x: torch.Tensor) -> torch.Tensor: ...


class DefendedClassifier(nn.Module):
    """Purify, then classify: the whole defended model as one module (logits out)."""

    def __init__(self, classifier: nn.Module, defense: nn.Module) -> None:
        super().__init__()
        self.classifier, self.defense = classifier, defense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.defense.purify(x))


class TrainedPurifier(SelfDescribing, pl.LightningModule):
    """What every purifier trained by `src.train` shares: self-describing checkpoints, the best
    epoch kept by validation reconstruction error, and one `_eval_step` for val and test."""

    kind = "defense"
    stochastic = False
    checkpoint_monitor = ("val/recon", "min")
    # hyperparameters that only steer purification (e.g. Defense-GAN's search budget): the
    # config's values replace the checkpoint's at load, so one trained model serves a sweep
    test_time_hparams: tuple[str, ...] = ()

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.purify(x)

    def _eval_step(self, batch, stage: str) -> None:
        raise NotImplementedError

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")


def needs_training(target: str) -> bool:
    """A defense with weights is a LightningModule; one without (`none`) is built directly."""
    return issubclass(get_class(target), pl.LightningModule)
