"""One LightningModule that trains any classifier architecture with cross-entropy.

The architecture and optimizer arrive as Hydra config dicts and are built here, so they are
saved in the checkpoint's hparams and `src.runtime.checkpoints.load` can rebuild the model alone.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torchmetrics.classification import MulticlassAccuracy

from src.runtime.checkpoints import SelfDescribing


class ClassifierModule(SelfDescribing, pl.LightningModule):
    kind = "classifier"
    checkpoint_monitor = ("val/acc", "max")

    def __init__(
        self,
        name: str,
        data: str,
        input_shape: tuple[int, int, int],
        num_classes: int,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        channels, _, size = input_shape
        self.net = instantiate(net, in_channels=channels, image_size=size, num_classes=num_classes)
        self.accuracy = torch.nn.ModuleDict(
            {stage: MulticlassAccuracy(num_classes) for stage in ("train_", "val", "test")}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metric = self.accuracy[stage]
        metric(logits, y)
        name = stage.rstrip("_")
        self.log(f"{name}/loss", loss, prog_bar=True, batch_size=len(y))
        self.log(f"{name}/acc", metric, prog_bar=stage != "train_", batch_size=len(y))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train_")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer)(self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler)(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
