"""`callbacks=gpu`: train in the channels_last (NHWC) memory format.

GPU tensor cores run convolutions on NHWC data; in PyTorch's default NCHW every cuDNN
convolution pays a layout conversion on the way in and out. Moving the module's weights to
channels_last once is enough: a convolution with NHWC weights returns NHWC outputs, so the
format then carries through the network, and its first layer converts the input batch.
Safe for every model here: tests/test_memory_format.py runs each classifier and purifier in
both formats and compares outputs and input gradients. Checkpoints load either way, since
a state dict copies values, not strides.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class ChannelsLast(pl.Callback):
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
