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
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from torch import nn

from src import checkpoints
from src.card import read_card
from src.defenses.base import (
    CompositeDefense,
    DefendedClassifier,
    Defense,
    TrainedPurifier,
    checked,
    defense_class,
)
from src.errors import AdvPurifyError, build
from src.threats import Pipeline
from src.zoo import entry as zoo_entry

if TYPE_CHECKING:  # ART loads in seconds: only art_classifier imports it
    from art.estimators.classification import PyTorchClassifier

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def load_classifier(
    data: str,
    name: str,
    ckpt: str | Path | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """A trained classifier, frozen, in eval mode; `ckpt` overrides
    checkpoints/<data>/<size>px/<name>.ckpt (the one size published, when no shape is given)."""
    path = ckpt or checkpoints.find(checkpoint_dir, data, name, input_shape)
    hint = checkpoints.train_hint(data, input_shape, "classifier", name)
    return checkpoints.load(path, "classifier", data, input_shape, hint, name=name)


def target_name(classifier: str, defense: DictConfig, retrained: bool) -> str:
    """The classifier a run uses: `<classifier>+<purifier>` when retrained on the purifier's outputs."""
    return (
        checkpoints.retrained_name(classifier, defense.get("purifier", defense.name))
        if retrained
        else classifier
    )


def build_defense(
    cfg: DictConfig,
    data: str,
    ckpt: str | Path | None = None,
    checkpoint_dir: str | Path = "checkpoints",
    input_shape: tuple[int, ...] | None = None,
    classifier: str | None = None,
) -> Defense:
    """A defense from its config, by its form (src/defenses/base.py): a trained purifier from its
    checkpoint, with the config's test-time settings; a composite from its parts' checkpoints
    (and, given the target's name, what it prepared for it); any other built directly."""
    cls = defense_class(cfg._target_)
    if issubclass(cls, CompositeDefense):
        return checked(cls.from_checkpoints(cfg, data, checkpoint_dir, input_shape, classifier).eval())
    if not issubclass(cls, TrainedPurifier):
        return checked(build(cfg).eval())
    path = ckpt or checkpoints.find(checkpoint_dir, data, cfg.name, input_shape)
    hint = checkpoints.train_hint(data, input_shape, "defense", cfg.name)
    module = checkpoints.load(path, "defense", data, input_shape, hint, name=cfg.name, base=cls)
    for key in module.test_time_hparams:
        module.hparams[key] = cfg[key]
    return checked(module)


def options(group: str) -> list[str]:
    """The configs of one conf/ group, by name (none for a key that is not a group)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def composed(config: str, overrides: Sequence[str]) -> DictConfig:
    """`conf/<config>.yaml` with command-line style overrides, as the entry points see it; a
    config group given an option it lacks stops with the options it has."""
    for override in overrides:
        group, _, option = override.partition("=")
        known = options(group)
        if known and "." not in group and option not in known:
            raise AdvPurifyError(f"unknown {group} {option!r}: choose one of {known}")
    try:
        if GlobalHydra.instance().is_initialized():  # inside an entry point: its search path is ours
            return compose(config, overrides=list(overrides))
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(config, overrides=list(overrides))
    except (MissingConfigException, OverrideParseException, ConfigCompositionException) as err:
        raise AdvPurifyError(f"overrides {list(overrides)}: {err}") from err


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
        ckpt = zoo_entry(zoo, data, name) / f"{name}.ckpt"
    return build_defense(cfg, data, ckpt, checkpoint_dir)


def card(data: str, name: str, zoo: str | Path = "zoo") -> dict:
    """The model card of a purifier exported to `<zoo>/<data>/<name>/` (src.export)."""
    return read_card(zoo_entry(zoo, data, name))


def input_shape_of(model: nn.Module) -> tuple[int, ...] | None:
    """The input shape a trained model records (None for `none` and foreign modules)."""
    hparams = getattr(model, "hparams", None)
    if hparams is not None and "input_shape" in hparams:
        return tuple(hparams["input_shape"])
    purifier = getattr(model, "purifier", None)  # a composite reports its purifier's
    return input_shape_of(purifier) if purifier is not None else None


def common_shape(classifier: nn.Module, defense: nn.Module) -> tuple[int, ...] | None:
    """The input shape both models take (None when neither records one)."""
    shapes = {"classifier": input_shape_of(classifier), "purifier": input_shape_of(defense)}
    if None not in shapes.values() and shapes["classifier"] != shapes["purifier"]:
        raise AdvPurifyError(
            f"the classifier takes images of shape {shapes['classifier']} but the purifier "
            f"{shapes['purifier']}: load both for the same data and data.image_size"
        )
    return shapes["classifier"] or shapes["purifier"]


def defended(classifier: nn.Module, defense: nn.Module) -> nn.Module:
    """One module that purifies, then classifies, and checks its inputs (`check_images`): the
    model to predict with. Do not hand it to an attack library: its gradient through a
    non-differentiable purifier is wrong or zero; attack `attackable()` instead."""
    return DefendedClassifier(classifier, defense, common_shape(classifier, defense)).eval()


def attackable(classifier: nn.Module, purifier: nn.Module, eot_samples: int = 8) -> nn.Module:
    """The module an outside attack library (torchattacks, AutoAttack, ART) should attack: the
    pipeline threat's model (SPEC 4.2), differentiated as the purifier declares (`exact`,
    `straight_through`, or BPDA's identity), and, for a random purifier, the mean of
    `eot_samples` draws' log-probabilities (EOT). It returns logits, or those mean
    log-probabilities, whose cross-entropy and margins attacks use as they would logits."""
    common_shape(classifier, purifier)
    return Pipeline(classifier, checked(purifier), eot_samples).eval()


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
    from src.art_estimator import defended_estimator

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
    from src.eval import scores_under_attack  # src.eval builds on this module

    classifier, defense = (
        (model.classifier, model.defense)
        if isinstance(model, DefendedClassifier)
        else (model, load_defense("", "none"))
    )
    return scores_under_attack(
        classifier, defense, x, y, [f"attack={attack}", f"threat={threat}", *overrides], eps, checkpoint_dir
    )
