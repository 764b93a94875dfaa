"""Threat models (SPEC 4): which model the attacker differentiates through.

Eval always scores the defended model; a threat model only decides what the attack sees.
Purification defenses look strong when the attack never sees the purifier (Athalye, Carlini
& Wagner 2018), so `pipeline` attacks the whole defended model, end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from src.errors import AdvPurifyError


@dataclass
class ClassifierThreat:
    """SPEC 4.1, the source's setting: the attack sees the classifier alone, not the purifier."""

    name: str = "classifier"

    def model_to_attack(self, classifier: nn.Module, defense: nn.Module) -> nn.Module:
        return classifier


class Pipeline(nn.Module):
    """Purify, then classify, as the attacker differentiates it.

    The purifier's gradient follows what the defense declares: `exact` and `straight_through`
    (a surrogate built into its forward, like VQUNet's STE) backpropagate through `purify`;
    `identity` is BPDA: the forward value is purify(x), the backward pass treats it as x. A
    stochastic defense is run `eot_samples` times per forward (EOT) and the output is the mean
    of the log-probabilities, whose cross-entropy is the mean over draws up to a
    normaliser: its gradient is the EOT average the attack needs.
    """

    def __init__(self, classifier: nn.Module, defense: nn.Module, eot_samples: int) -> None:
        super().__init__()
        if eot_samples < 1:
            raise AdvPurifyError(f"threat.eot_samples={eot_samples}: need at least 1 draw")
        self.classifier, self.defense = classifier, defense
        self.draws = eot_samples if defense.stochastic else 1

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        if self.defense.gradient == "identity":
            return x + (self.defense.purify(x) - x).detach()
        return self.defense.purify(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.draws == 1:
            return self.classifier(self.purify(x))
        draws = [self.classifier(self.purify(x)).log_softmax(1) for _ in range(self.draws)]
        return torch.stack(draws).mean(0)


@dataclass
class PipelineThreat:
    """SPEC 4.2 (section 3.4.4): attack purifier + classifier end to end, with BPDA and EOT."""

    name: str = "pipeline"
    eot_samples: int = 8

    def model_to_attack(self, classifier: nn.Module, defense: nn.Module) -> nn.Module:
        return Pipeline(classifier, defense, self.eot_samples).eval()
