"""What a purifier is trained on (`defense.train_inputs`): clean, adversarial or mixed inputs.

A purifier trained to reconstruct clean images from clean images has the identity as its loss
optimum: more training buys fidelity, and fidelity carries a perturbation through (docs/decisions.md).
Chapter 5 regularizes "both adversarial and clean data", and Defense-VAE is trained on
attacked inputs. So any purifier can be: `adversarial` attacks every training image, `mixed`
half of each batch, on the fly, against the frozen target (`attacker`), with one of `attacks`
(attack configs of conf/attack/, norm-bounded) at a budget drawn from `eps`. The loss always
asks for the clean image. Crafting per batch gives a fresh attack every epoch at no storage
cost, on the training device, with the native attacks.

Validation attacks deterministically (budgets and attacks cycle through the grid, and `mixed`
keeps every other image clean), so `val/recon`, the checkpoint criterion, measures the inputs
the purifier is trained for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from src.attacks.base import attack_class
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError, build

TRAIN_INPUTS = ("clean", "adversarial", "mixed")
Attacks = Mapping[str, Mapping[str, Any]]  # name -> an attack config without eps


@dataclass
class Frozen:
    """A model used by a module but kept out of its parameters, device moves and checkpoint."""

    model: nn.Module


def check(mode: str, attacker: str | None, attacks: Attacks, eps: Sequence[float]) -> None:
    """Refuse settings that would fail at the first batch, or craft nothing."""
    if mode not in TRAIN_INPUTS:
        raise AdvPurifyError(f"defense.train_inputs={mode!r}: choose one of {list(TRAIN_INPUTS)}")
    if mode == "clean":
        return
    if not attacks:
        raise AdvPurifyError(f"defense.train_inputs={mode} needs an attack in defense.attacks")
    for name, spec in attacks.items():
        if attack_class(spec.get("_target_", ""), ours_only=True).minimal_norm is not None:
            raise AdvPurifyError(
                f"defense.attacks.{name} is a minimal-norm attack: purifiers train on norm-bounded "
                "ones (fgsm, bim, pgd)"
            )
    if not eps or any(not 0 <= e <= 1 for e in eps):
        raise AdvPurifyError(f"defense.eps={list(eps)}: give training budgets in [0, 1]")
    if not attacker:
        raise AdvPurifyError(f"defense.train_inputs={mode} needs defense.attacker (the target's checkpoint)")


class AttackedInputs:
    def __init__(
        self,
        mode: str,
        attacker: str | None,
        attacks: Attacks,
        eps: Sequence[float],
    ) -> None:
        check(mode, attacker, attacks, eps)
        self.mode, self.attacker, self.attacks, self.eps = mode, attacker, dict(attacks), list(eps)
        self.frozen: Frozen | None = None

    def start(self, data: str, input_shape: Sequence[int], device: torch.device) -> None:
        """Load the target the inputs are crafted on (nothing for clean inputs)."""
        if self.mode == "clean":
            return
        hint = checkpoints.train_hint(data, input_shape, "classifier", Path(self.attacker).stem)
        model = checkpoints.load(self.attacker, "classifier", data, tuple(input_shape), hint)
        self.frozen = Frozen(model.to(device).eval().requires_grad_(False))

    def specs(self, n: int, device: torch.device, train: bool) -> torch.Tensor:
        """Per image: attack index * len(eps) + eps index, or -1 to keep it clean."""
        count = len(self.attacks) * len(self.eps)
        if train:
            spec = torch.randint(count, (n,), device=device)
            keep = torch.rand(n, device=device) < 0.5
        else:
            index = torch.arange(n, device=device)
            spec, keep = (index // 2 if self.mode == "mixed" else index) % count, index % 2 == 1
        return torch.where(keep, -1, spec) if self.mode == "mixed" else spec

    def __call__(self, x: torch.Tensor, y: torch.Tensor, train: bool) -> torch.Tensor:
        """The inputs for clean images x with labels y (x itself for clean inputs)."""
        if self.mode == "clean":
            return x
        if self.frozen is None:
            raise AdvPurifyError("attacked training inputs are crafted during fit only: call trainer.fit")
        spec = self.specs(len(x), x.device, train)
        eps = torch.tensor(self.eps, device=x.device)
        x_in = x.clone()
        for a, config in enumerate(self.attacks.values()):
            rows = ((spec >= 0) & (spec // len(eps) == a)).nonzero().squeeze(1)
            rows = rows[eps[spec[rows] % len(eps)] > 0]
            if len(rows):
                # one chunk: the budgets are per image, and a chunked attack would misalign them
                attack = build(config, eps=eps[spec[rows] % len(eps)], batch_size=len(rows))
                x_in[rows] = attack(self.frozen.model, x[rows], y[rows])
        return x_in
