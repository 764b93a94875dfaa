"""The trained models a run needs, loaded from their stable places: a classifier by name, a
defense by its config (trained purifier, composite, or weightless)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from src.defenses.base import (
    CompositeDefense,
    DefendedClassifier,
    Defense,
    TrainedPurifier,
    checked,
    defense_class,
)
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError, build


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
        checkpoints.retrained_name(classifier, defense_class(defense._target_).retrained_on(defense))
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
    cls.check_settings(cfg, "defense")
    if ckpt is not None and not issubclass(cls, TrainedPurifier):
        raise AdvPurifyError(
            f"defense={cfg.name} has no checkpoint of its own, so defense_ckpt={ckpt} would be ignored: "
            "drop defense_ckpt=, or name the defense it belongs to with defense="
        )
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
