"""Training guards: a run that has gone wrong stops with one line instead of publishing.

A NaN or inf loss or metric means the weights are garbage (in our first try, all-NaN weights
were published over a good model with exit code 0), so training stops at the first one, and
`src.train` publishes only after a run that finished.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch

from src.errors import AdvPurifyError


class StopOnNonFinite(pl.Callback):
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        values = dict(trainer.callback_metrics)
        if torch.is_tensor(loss):
            values["train loss"] = loss.detach()
        self.check(trainer, values)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, dict(trainer.callback_metrics))

    @staticmethod
    def check(trainer: pl.Trainer, values: dict[str, Any]) -> None:
        for key, value in values.items():
            number = value.float().mean().item() if torch.is_tensor(value) else value
            if isinstance(number, float) and not math.isfinite(number):
                raise AdvPurifyError(
                    f"{key} became {number} in epoch {trainer.current_epoch}: training diverged and "
                    "nothing was published; lower the learning rate (defense.lr= for a defense, "
                    "classifier.optimizer.lr= for a classifier)"
                )
