"""Threat models (SPEC 4): which model the attacker differentiates through.

Eval always scores the defended model; a threat model only decides what the attack sees.
Purification defenses look strong when the attack never sees the purifier (Athalye, Carlini
& Wagner 2018), so `pipeline` attacks the whole defended model, end to end.

`parts` splits the evaluated images among the models that craft them: one model for all of
them, except under `transfer` and `paper`, where surrogates craft a share and a white-box
target the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from src.defenses.base import check_images, parameter_dtype
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, FRACTION, ChecksSettings, one_of

Parts = list[tuple[nn.Module, torch.Tensor]]  # (model that crafts, indices of its images)
Loader = Callable[[str], nn.Module]  # a trained classifier by config name
WHITE_BOX = ("original", "retrained")  # which target a threat's white-box share is crafted on


def declared_purify(defense: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """purify(x), differentiable as the defense declares: `exact` and `straight_through`
    backpropagate through `purify`; `identity` is BPDA, whose backward pass treats it as x."""
    if defense.gradient == "identity":
        return x + (defense.purify(x) - x).detach()
    return defense.purify(x)


def every_image(model: nn.Module, n: int) -> Parts:
    return [(model, torch.arange(n))]


@dataclass
class ClassifierThreat(ChecksSettings):
    """SPEC 4.1, the source's setting: the attack sees the classifier alone, not the purifier."""

    name: str = "classifier"
    oblivious: bool = field(default=True, init=False)  # its images do not depend on the defense

    def model_to_attack(self, classifier: nn.Module, defense: nn.Module) -> nn.Module:
        return classifier

    def parts(self, classifier: nn.Module, defense: nn.Module, n: int, load: Loader) -> Parts:
        return every_image(self.model_to_attack(classifier, defense), n)


class Pipeline(nn.Module):
    """Purify, then classify, as the attacker differentiates it.

    The purifier's gradient follows what the defense declares (`declared_purify`: through
    `purify`, or BPDA). A stochastic defense is run `eot_samples` times per forward (EOT) and
    the output is the mean of the log-probabilities, whose cross-entropy is the mean over
    draws up to a normaliser: its gradient is the EOT average the attack needs.
    """

    def __init__(
        self,
        classifier: nn.Module,
        defense: nn.Module,
        eot_samples: int,
        input_shape: tuple[int, ...] | None = None,
        checked: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(eot_samples, bool) or not isinstance(eot_samples, int) or eot_samples < 1:
            raise AdvPurifyError(
                f"eot_samples={eot_samples} (threat.eot_samples, or attackable's): need at least 1 draw"
            )
        self.classifier, self.defense = classifier, defense
        self.draws = eot_samples if defense.stochastic else 1
        self.input_shape, self.checked = input_shape, checked  # checked: the API's, for outside code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.checked:
            check_images(x, self.input_shape, parameter_dtype(self.classifier))
        if self.draws == 1:
            return self.classifier(declared_purify(self.defense, x))
        draws = [self.classifier(declared_purify(self.defense, x)).log_softmax(1) for _ in range(self.draws)]
        return torch.stack(draws).mean(0)


@dataclass
class PipelineThreat(ChecksSettings):
    """SPEC 4.2 (section 3.4.4): attack purifier + classifier end to end, with BPDA and EOT."""

    rules: ClassVar = {"eot_samples": COUNT}
    name: str = "pipeline"
    eot_samples: int = 8
    oblivious: bool = field(default=False, init=False)

    def model_to_attack(self, classifier: nn.Module, defense: nn.Module) -> nn.Module:
        return Pipeline(classifier, defense, self.eot_samples).eval()

    def parts(self, classifier: nn.Module, defense: nn.Module, n: int, load: Loader) -> Parts:
        return every_image(self.model_to_attack(classifier, defense), n)


@dataclass
class TransferThreat(ChecksSettings):
    """SPEC 4.3 (chapter 5): adversarial examples crafted on surrogate classifiers the attacker
    trained itself (never on the defended target), then fed to the defended target.

    A share `mix` of the images is crafted on the surrogates, round robin; the rest white-box
    on a target classifier, `white_box`: the `original` one (trained on clean data) or the one
    `retrained` on the purifier's outputs (eval resolves the choice to a model and passes it as
    `classifier`). mix=0.5 with the three DenseNets is the source's protocol (`threat=paper`);
    mix=1 is pure transfer.
    """

    rules: ClassVar = {"mix": FRACTION, "white_box": one_of(*WHITE_BOX)}
    name: str = "transfer"
    surrogates: Sequence[str] = field(default_factory=lambda: ["densenet50_12"])
    mix: float = 1.0
    white_box: str = "retrained"
    oblivious: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not self.surrogates:
            raise AdvPurifyError("threat=transfer needs at least one surrogate: set threat.surrogates")
        if not 0 <= self.mix <= 1:
            raise AdvPurifyError(f"threat.mix={self.mix}: the share crafted on surrogates is in [0, 1]")
        if self.white_box not in WHITE_BOX:
            raise AdvPurifyError(f"threat.white_box={self.white_box!r}: choose one of {list(WHITE_BOX)}")

    def parts(self, classifier: nn.Module, defense: nn.Module, n: int, load: Loader) -> Parts:
        white = round(n * (1 - self.mix))
        parts = [(classifier, torch.arange(white))] if white else []
        transferred = torch.arange(white, n)
        for k, name in enumerate(self.surrogates):
            share = transferred[k :: len(self.surrogates)]
            if len(share):
                parts.append((load(name).eval().requires_grad_(False), share))
        return parts
