"""The public Python API, for putting a trained purifier in front of your own classifier.

from src.api import load_classifier, load_defense, defended
classifier = load_classifier("fmnist", "fmnist_a")
purifier = load_defense("fmnist", "none")
model = defended(classifier, purifier)      # purify, then classify
logits = model(x)                           # x: N x C x H x W pixels in [0, 1]
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import DictConfig
from torch import nn

from src import checkpoints
from src.defenses.base import (
    CompositeDefense,
    DefendedClassifier,
    Defense,
    TrainedPurifier,
    checked,
    defense_class,
)
from src.errors import AdvPurifyError, build

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


def load_defense(
    data: str, name: str, ckpt: str | Path | None = None, checkpoint_dir: str | Path = "checkpoints"
) -> nn.Module:
    """A defense by its config name (`conf/defense/<name>.yaml`, or one registered in Hydra's
    ConfigStore); `none` is the identity."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        try:
            cfg = compose("train", overrides=[f"defense={name}"]).defense  # follows the config's defaults
        except MissingConfigException as err:
            options = sorted(p.stem for p in (CONF_DIR / "defense").glob("*.yaml"))
            raise AdvPurifyError(f"unknown defense {name!r}: choose one of {options}") from err
    return build_defense(cfg, data, ckpt, checkpoint_dir)


def input_shape_of(model: nn.Module) -> tuple[int, ...] | None:
    """The input shape a trained model records (None for `none` and foreign modules)."""
    hparams = getattr(model, "hparams", None)
    if hparams is not None and "input_shape" in hparams:
        return tuple(hparams["input_shape"])
    purifier = getattr(model, "purifier", None)  # a composite reports its purifier's
    return input_shape_of(purifier) if purifier is not None else None


def defended(classifier: nn.Module, defense: nn.Module) -> nn.Module:
    """One module that purifies, then classifies, and checks its inputs (`check_images`)."""
    shapes = {"classifier": input_shape_of(classifier), "purifier": input_shape_of(defense)}
    if None not in shapes.values() and shapes["classifier"] != shapes["purifier"]:
        raise AdvPurifyError(
            f"the classifier takes images of shape {shapes['classifier']} but the purifier "
            f"{shapes['purifier']}: load both for the same data and data.image_size"
        )
    shape = shapes["classifier"] or shapes["purifier"]
    return DefendedClassifier(classifier, defense, shape).eval()
