"""Parts written the way docs/adding_a_defense.md and docs/adding_an_attack.md say, outside
src/: a trained purifier, a weightless filter and an attack, each one class with the rules of
its settings beside it, and a config registered where conf/<group>/<name>.yaml would hold it.
Nothing in src/ names them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.core.config_store import ConfigStore
from torch import nn

from src.attacks.base import Attack
from src.defenses.base import Defense, TrainedPurifier
from src.runtime.rules import COUNT, POSITIVE, Rule


class TinyPurifier(TrainedPurifier):
    """Two 3x3 convolutions trained to reconstruct clean images."""

    gradient = "exact"
    rules = {"width": COUNT, "lr": POSITIVE}

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


class MedianFilter(Defense):
    """A size x size median filter: no weights, so nothing to train; BPDA's identity for the
    gradient, since the median's own gradient is sparse."""

    gradient = "identity"
    rules = {"size": Rule(lambda v: isinstance(v, int) and v % 2 == 1 and v >= 1, "an odd whole number >= 1")}

    def __init__(self, name: str = "median", size: int = 3) -> None:
        super().__init__()
        self.name, self.size = name, size

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.size // 2
        windows = F.pad(x, [pad] * 4, mode="replicate").unfold(2, self.size, 1).unfold(3, self.size, 1)
        return windows.reshape(*x.shape, -1).median(dim=-1).values


class TwoStep(Attack):
    """`steps` signed-gradient steps of eps / steps each, kept in the eps ball (L-inf)."""

    rules = {"steps": COUNT}

    def __init__(self, steps: int = 2, **base) -> None:
        super().__init__(**base)
        self.steps = steps

    @classmethod
    def iterations_of(cls, settings) -> int:
        return int(settings.get("steps", 2))

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_adv = x.clone()
        for _ in range(self.steps):
            x_adv.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
            step = x_adv.detach() + self.eps / self.steps * grad.sign()
            x_adv = (x + (step - x).clamp(-self.eps, self.eps)).clamp(0, 1)
        return x_adv.detach()


CONFIGS = {
    ("defense", "tiny"): {"_target_": f"{__name__}.TinyPurifier", "name": "tiny", "width": 8},
    ("defense", "median"): {"_target_": f"{__name__}.MedianFilter", "name": "median", "size": 3},
    ("attack", "two_step"): {
        **{"_target_": f"{__name__}.TwoStep", "name": "two_step"},
        **{"norm": "inf", "batch_size": 256, "steps": 2},
    },
}
for (group, name), node in CONFIGS.items():
    ConfigStore.instance().store(group=group, name=name, node=node)
