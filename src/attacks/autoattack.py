"""AutoAttack (Croce & Hein 2020), the field's standard robustness evaluation, through its
reference implementation (the `pyautoattack` package), not a port.

It is an attack like the others: built per eps, called on the model the threat chooses. Under
`threat=pipeline` that model is `src.evaluation.threats.Pipeline`, so AutoAttack differentiates the
defense's declared gradient (BPDA, straight-through) and, for a random defense, the Pipeline's
EOT mean; `version=rand` adds AutoAttack's own EOT (20 draws per APGD step) on top.

Its random draws (restarts, Square's proposals) take a seed drawn from torch's generator, which
eval seeds per cell, so a cell's examples are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from src.attacks.base import Attack
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import one_of

VERSIONS = ("standard", "rand", "custom")
ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
NORMS = {math.inf: "Linf", 2.0: "L2"}


class AutoAttack(Attack):
    rules = {"version": one_of("standard", "rand", "custom")}

    def __init__(self, version: str = "standard", attacks: Sequence[str] | None = None, **base) -> None:
        super().__init__(**base)
        if self.backend != "native":
            raise AdvPurifyError(
                "attack=autoattack runs Croce & Hein's own code (pyautoattack), which ART does not "
                "reproduce: set attack.backend=native"
            )
        if version not in VERSIONS:
            raise AdvPurifyError(f"attack.version={version!r}: choose one of {list(VERSIONS)}")
        attacks = list(attacks) if attacks is not None else None
        if version == "custom":
            unknown = [a for a in attacks or [] if a not in ATTACKS]
            if not attacks or unknown:
                raise AdvPurifyError(
                    f"attack.attacks={attacks}: version=custom needs a non-empty list of {list(ATTACKS)}"
                )
        elif attacks:
            raise AdvPurifyError(
                f"attack.attacks={attacks} is only read with attack.version=custom "
                f"(version={version} runs its own list): set attack.attacks=null"
            )
        self.version, self.attacks = version, attacks

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from pyautoattack import AutoAttack as Reference

        reference = Reference(
            model,
            norm=NORMS[self.norm],
            eps=float(self.eps),
            version=self.version,
            attacks=self.attacks,
            device=x.device,
            seed=int(torch.randint(0, 2**31 - 1, ()).item()),
        )
        x_adv, _ = reference.run_standard_evaluation(x, y, batch_size=self.batch_size)
        return x_adv.to(x.device, x.dtype)
