"""Defense-VAE (Li & Ji 2019; SPEC 3.4 baseline): a VAE trained to map adversarial examples
back to their clean images.

The network and loss are the non-SFL VAE's (`defense=vae`); only the input changes: each
training image is attacked on the fly, on the frozen target classifier, by one of
`attacks` at a budget drawn from `eps` (0 keeps it clean), and the VAE is asked to
reconstruct the clean image. Crafting per batch instead of once up front gives a fresh
attack every epoch at no storage cost, and runs on the training device with the native
attacks, built from attack configs (`defense.attacks`, conf/attack/ with their own step
sizes and counts). Validation attacks deterministically (budgets cycle through the grid), so
`val/recon`, the checkpoint criterion, is the error on adversarial inputs it is built for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from src import checkpoints
from src.attacks.base import attack_class
from src.defenses.sfl_vae import SFLVAE
from src.errors import AdvPurifyError, build


@dataclass
class Frozen:
    """A model used by the module but kept out of its parameters, device moves and checkpoint."""

    model: nn.Module


class DefenseVAE(SFLVAE):
    def __init__(
        self,
        *,
        attacker: str,
        attacks: Mapping[str, Mapping[str, Any]],
        eps: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3),
        **vae,
    ) -> None:
        """`attacks`: name -> an attack config (conf/attack/) without eps, norm-bounded."""
        if not attacks:
            raise AdvPurifyError("defense_vae needs at least one attack in defense.attacks")
        for name, spec in attacks.items():
            if attack_class(spec.get("_target_", ""), ours_only=True).minimal_norm is not None:
                raise AdvPurifyError(
                    f"defense.attacks.{name} is a minimal-norm attack: Defense-VAE trains on "
                    "norm-bounded ones (fgsm, bim, pgd)"
                )
        if not eps or any(not 0 <= e <= 1 for e in eps):
            raise AdvPurifyError(f"defense_vae eps={list(eps)}: give budgets in [0, 1]")
        super().__init__(**vae)
        self.attacker: Frozen | None = None

    def on_fit_start(self) -> None:
        hp = self.hparams
        hint = checkpoints.train_hint(hp.data, hp.input_shape, "classifier", Path(hp.attacker).stem)
        model = checkpoints.load(hp.attacker, "classifier", hp.data, tuple(hp.input_shape), hint)
        self.attacker = Frozen(model.to(self.device).eval().requires_grad_(False))

    def adversarial(self, x: torch.Tensor, y: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """x attacked per image by spec = attack index * len(eps) + eps index (eps 0: x itself)."""
        if self.attacker is None:
            raise AdvPurifyError("defense_vae crafts its inputs during fit only: call trainer.fit")
        eps = torch.tensor(self.hparams.eps, device=x.device)
        n_eps = len(eps)
        x_adv = x.clone()
        for a, config in enumerate(self.hparams.attacks.values()):
            rows = ((spec // n_eps == a) & (eps[spec % n_eps] > 0)).nonzero().squeeze(1)
            if len(rows):
                attack = build(config, eps=eps[spec[rows] % n_eps])
                x_adv[rows] = attack(self.attacker.model, x[rows], y[rows])
        return x_adv

    def num_specs(self) -> int:
        return len(self.hparams.attacks) * len(self.hparams.eps)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        spec = torch.randint(self.num_specs(), (len(x),), device=x.device)
        parts = self.losses(self.adversarial(x, y, spec), target=x)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=True, batch_size=len(x))
        return parts["loss"]

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        if self.attacker is None:  # trainer.test after fit reloads weights, not the attacker
            self.on_fit_start()
        spec = torch.arange(len(x), device=x.device) % self.num_specs()
        x_adv = self.adversarial(x, y, spec)
        parts = self.losses(x_adv, target=x)
        recon = F.mse_loss(self.purify(x_adv), x)
        clean = F.mse_loss(self.purify(x), x)
        self.log_dict(
            {f"{stage}/loss": parts["loss"], f"{stage}/recon": recon, f"{stage}/clean_recon": clean},
            prog_bar=stage == "val",
            batch_size=len(x),
        )
