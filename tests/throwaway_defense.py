"""A tiny purifier written the way docs/adding_a_defense.md says, outside src/: proof that a
new defense is one module plus one config."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.core.config_store import ConfigStore
from torch import nn

from src.defenses.base import TrainedPurifier


class TinyPurifier(TrainedPurifier):
    """Two 3x3 convolutions trained to reconstruct clean images."""

    gradient = "exact"

    def __init__(self, *, width: int = 8, lr: float = 0.01, **common) -> None:
        super().__init__(**common)
        self.net = nn.Sequential(
            nn.Conv2d(self.channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, self.channels, 3, padding=1),
            nn.Sigmoid(),
        )

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, _ = batch
        loss = F.mse_loss(self.purify(x), x)
        self.log("train/loss", loss, batch_size=len(x))
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        x, _ = batch
        self.log(f"{stage}/recon", F.mse_loss(self.purify(x), x), batch_size=len(x))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


# the config, registered in code where conf/defense/tiny.yaml would hold it
ConfigStore.instance().store(
    group="defense", name="tiny", node={"_target_": f"{__name__}.TinyPurifier", "name": "tiny", "width": 8}
)
