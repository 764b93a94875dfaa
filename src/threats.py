"""Threat models (SPEC 4): which model the attacker differentiates through.

Eval always scores the defended model; a threat model only decides what the attack sees.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class ClassifierThreat:
    """SPEC 4.1, the source's setting: the attack sees the classifier alone, not the purifier."""

    name: str = "classifier"

    def model_to_attack(self, classifier: nn.Module, defense: nn.Module) -> nn.Module:
        return classifier
