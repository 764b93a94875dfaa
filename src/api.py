"""The public Python API, for putting a trained purifier in front of your own classifier.

from src.api import load_classifier, load_defense, defended, attackable, robust_accuracy
classifier = load_classifier("fmnist", "fmnist_a")
purifier = load_defense("fmnist", "vqunet")
model = defended(classifier, purifier)      # purify, then classify: for predictions
logits = model(x)                           # x: N x C x H x W pixels in [0, 1]
target = attackable(classifier, purifier)   # what torchattacks, ART or AutoAttack should attack
robust_accuracy(model, x, y, attack="pgd", eps=[0.1])   # {0.1: accuracy}, as src.eval computes it

docs/api.md has a worked example with torchattacks, AutoAttack and ART.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from src.defenses.base import DefendedClassifier, checked
from src.evaluation.grid import scores_under_attack
from src.evaluation.models import (
    build_defense,
    common_shape,
    defended,
    input_shape_of,
    load_classifier,
    target_name,
)
from src.evaluation.threats import Pipeline
from src.reporting.cards import entry as zoo_entry
from src.reporting.cards import read_card
from src.runtime.configs import CONF_DIR, composed, options
from src.runtime.errors import AdvPurifyError

if TYPE_CHECKING:  # ART loads in seconds: only art_classifier imports it
    from art.estimators.classification import PyTorchClassifier

__all__ = [
    "CONF_DIR",
    "art_classifier",
    "attackable",
    "build_defense",
    "card",
    "composed",
    "defended",
    "input_shape_of",
    "load_classifier",
    "load_defense",
    "options",
    "robust_accuracy",
    "target_name",
]


def load_defense(
    data: str,
    name: str,
    ckpt: str | Path | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    zoo: str | Path | None = None,
) -> nn.Module:
    """A defense by its config name (`conf/defense/<name>.yaml`); `none` is the identity.
    Given `zoo`, its checkpoint is the one exported to `<zoo>/<data>/<name>/` (src.zoo)."""
    cfg = composed("train", [f"defense={name}"]).defense  # follows the config's defaults
    if zoo is not None:
        held = zoo_entry(zoo, data, name) / f"{name}.ckpt"
        ckpt = held if held.exists() else None  # a defense without weights exports none
    return build_defense(cfg, data, ckpt, checkpoint_dir)


def card(data: str, name: str, zoo: str | Path = "zoo") -> dict:
    """The model card of a purifier exported to `<zoo>/<data>/<name>/` (src.export)."""
    return read_card(zoo_entry(zoo, data, name))


def attackable(classifier: nn.Module, purifier: nn.Module, eot_samples: int = 8) -> nn.Module:
    """The module an outside attack library (torchattacks, AutoAttack, ART) should attack: the
    pipeline threat's model (SPEC 4.2), differentiated as the purifier declares (`exact`,
    `straight_through`, or BPDA's identity), and, for a random purifier, the mean of
    `eot_samples` draws' log-probabilities (EOT). It returns logits, or those mean
    log-probabilities, whose cross-entropy and margins attacks use as they would logits."""
    shape = common_shape(classifier, purifier)
    return Pipeline(classifier, checked(purifier), eot_samples, shape, checked=True).eval()


def art_classifier(
    classifier: nn.Module, purifier: nn.Module, input_shape: tuple[int, ...] | None = None
) -> PyTorchClassifier:
    """ART's PyTorchClassifier with the purifier as its preprocessing, differentiated as the
    purifier declares, so ART's own attacks are adaptive. `input_shape` is needed only for
    models that do not record one (your own)."""
    shape = common_shape(classifier, purifier) or input_shape
    if shape is None:
        raise AdvPurifyError("neither model records its input shape: pass input_shape=(C, H, W)")
    checked(purifier)
    if purifier.stochastic:
        raise AdvPurifyError(
            f"defense {purifier.name} is random and ART takes one draw per gradient: wrap "
            "attackable(classifier, purifier, eot_samples=8) in art's PyTorchClassifier for EOT"
        )
    from src.evaluation.art_estimator import defended_estimator

    device = next(classifier.parameters()).device
    return defended_estimator(classifier, purifier, shape, device)


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str = "pgd",
    eps: Sequence[float] = (0.1,),
    threat: str = "pipeline",
    overrides: Sequence[str] = (),
    checkpoint_dir: str | Path = "checkpoints",
) -> dict[float, float]:
    """Accuracy of `model` (from `defended()`, or a bare classifier) under `attack=<name>` at
    each eps, crafted under `threat=<name>`: what `src.eval` writes as adv_acc for the same
    settings, images and seed (eps 0: clean accuracy through the purifier). `overrides` are
    src.eval's, e.g. ["attack.max_iter=100", "seed=1"]; under `transfer`/`paper` the white-box
    share is crafted on `model`'s classifier and surrogates load from `checkpoint_dir`."""
    classifier, defense = (
        (model.classifier, model.defense)
        if isinstance(model, DefendedClassifier)
        else (model, load_defense("", "none"))
    )
    return scores_under_attack(
        classifier, defense, x, y, [f"attack={attack}", f"threat={threat}", *overrides], eps, checkpoint_dir
    )
