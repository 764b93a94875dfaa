"""A run's deadline (src.reproduce's `budget_minutes`): the run stops at its next boundary
where stopping loses nothing.

A GPU window ends at a fixed time, and a run still going then is killed mid-step. Checking the
budget between runs only is not enough: on a 2-core CPU one grid run through Defense-GAN takes
hours. So an eval starts no eps after the deadline (its finished cells are in the results
table) nor, crafting in parts (`eval.part_size`), a part (the finished ones are on disk); a
training stops after the epoch in which the deadline passed (its `last.ckpt` written; the next
run continues it with resume=true). Both then raise OutOfTime.
"""

from __future__ import annotations

import time

import pytorch_lightning as pl


class OutOfTime(Exception):
    """A run stopped at its deadline: what it finished is kept, and the next run goes on."""


def past(deadline: float | None) -> bool:
    """Whether a deadline (a `time.time()`; None for none) has come."""
    return deadline is not None and time.time() >= deadline


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
        if more and past(self.deadline):
            trainer.should_stop = True
            self.stopped = True
