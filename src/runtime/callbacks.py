"""The Lightning callbacks of a training that are not gradient steps: stop on a non-finite
number, stop at the run's deadline, keep the latest epoch to resume from, train in channels_last."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from src.runtime import deadline as run_deadline
from src.runtime.errors import AdvPurifyError


class StopOnNonFinite(pl.Callback):
    """A NaN or inf loss or metric means the weights are garbage (all-NaN weights were once
    published over a good model with exit code 0), so training stops at the first one, and
    `src.train` publishes only after a run that finished."""

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


class StopAtDeadline(pl.Callback):
    """Ends the fit after the first epoch that finishes past the deadline, unless it was the
    last epoch anyway; `stopped` says whether it did. The epoch's checkpoints are written by
    then: Lightning runs ModelCheckpoint's epoch-end hooks after every other callback's."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.stopped = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = trainer.max_epochs
        more = last is None or last < 0 or trainer.current_epoch + 1 < last
        if more and run_deadline.past(self.deadline):
            trainer.should_stop = True
            self.stopped = True


class LatestCheckpoint(ModelCheckpoint):
    """The run's `last.ckpt`, rewritten after every epoch: what resume=true continues from.

    ModelCheckpoint's own `save_last` writes it only in an epoch that saves a top-k checkpoint
    (Lightning 2.6 on), so a run stopped after epochs that did not better its best would go on
    from that best epoch and train the epochs since over again; a deadline's stop would lose
    them. Checkpoints run after every other callback, and this one after the best and the
    snapshots (src.train lists it last), so the file holds their state of the same epoch."""

    def __init__(self, folder: str) -> None:
        super().__init__(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False)

    @property
    def state_key(self) -> str:
        # its own key: a snapshots ModelCheckpoint (monitor none, every epoch) has this one's settings
        return self._generate_state_key(latest=True)


class ChannelsLast(pl.Callback):
    """`callbacks=gpu`: train in the channels_last (NHWC) memory format.

    GPU tensor cores run convolutions on NHWC data; in NCHW every cuDNN convolution pays a
    layout conversion. Moving the weights once is enough: an NHWC-weight convolution returns
    NHWC outputs, so the format carries through the network. Safe for every model here:
    tests/test_memory_format.py compares outputs and input gradients in both formats, and a
    state dict copies values, not strides."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
