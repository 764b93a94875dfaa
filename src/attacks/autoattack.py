"""AutoAttack (Croce & Hein 2020), the field's standard robustness evaluation, through its
reference implementation (the `pyautoattack` package), not a port.

It is an attack like the others: built per eps, called on the model the threat chooses. Under
`threat=pipeline` that model is `src.evaluation.threats.Pipeline`, so AutoAttack differentiates the
defense's declared gradient (BPDA, straight-through) and, for a random defense, the Pipeline's
EOT mean; `version=rand` adds AutoAttack's own EOT (20 draws per APGD step) on top.

Its random draws (restarts, Square's proposals) take a seed drawn from torch's generator, which
eval seeds per cell, so a cell's examples are reproducible.

A defense whose purification is itself a long search (Defense-GAN: R x L steps per image) makes
APGD's 100 iterations x 5 restarts cost hours per cell on a CPU; `max_iter` and `restarts` give a
custom subset fewer, and the rows' attack name carries them, so a cheaper run is never read as
the reference one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from src.attacks.base import Attack
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, one_of

VERSIONS = ("standard", "rand", "custom")
REFERENCE_ITERATIONS, REFERENCE_RESTARTS = 100, 5  # APGD's in the reference's custom version
ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
NORMS = {math.inf: "Linf", 2.0: "L2"}


class AutoAttack(Attack):
    rules = {"version": one_of("standard", "rand", "custom"), "max_iter": COUNT, "restarts": COUNT}

    def __init__(
        self,
        version: str = "standard",
        attacks: Sequence[str] | None = None,
        max_iter: int | None = None,
        restarts: int | None = None,
        **base,
    ) -> None:
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
        if version != "custom" and (max_iter is not None or restarts is not None):
            raise AdvPurifyError(
                f"attack.max_iter/attack.restarts change APGD in a custom subset only (version={version} "
                "is the reference's own): set attack.version=custom with attack.attacks, or leave them null"
            )
        self.version, self.attacks = version, attacks
        self.max_iter, self.restarts = max_iter, restarts

    @classmethod
    def iterations_of(cls, settings: Any) -> int:
        return int(settings.get("max_iter") or REFERENCE_ITERATIONS)

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
        if self.max_iter is not None or self.restarts is not None:
            self.cheaper(reference)
        x_adv, _ = reference.run_standard_evaluation(x, y, batch_size=self.batch_size)
        return x_adv.to(x.device, x.dtype)

    def cheaper(self, reference: Any) -> None:
        """Replace the reference's APGD attacks by ones built the same way (its constructor's
        settings) with this attack's iterations and restarts: APGD derives its step-size
        checkpoints from its iteration count when built, so the count cannot be changed after."""
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

        n_iter = self.max_iter or REFERENCE_ITERATIONS
        same = {"eps": reference.epsilon, "norm": reference.norm, "eot_iter": 1, "rho": 0.75}
        same |= {
            "seed": reference.seed,
            "device": reference.device,
            "verbose": False,
            "logger": reference.logger,
        }
        restarts = self.restarts or REFERENCE_RESTARTS
        reference.apgd = APGDAttack(reference.model, n_restarts=restarts, n_iter=n_iter, **same)
        reference.apgd_targeted = APGDAttack_targeted(reference.model, n_restarts=1, n_iter=n_iter, **same)
