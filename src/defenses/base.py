"""The defense contract: what every defense promises the rest of the framework, in one place.

A defense is a `Defense` (an `nn.Module`) with:

- `name`: its config name (`conf/defense/<name>.yaml`), which labels its results rows;
- `purify(x) -> x_hat`: pixels in [0, 1] in, pixels of the same shape out;
- `gradient`: how an attack may differentiate through `purify` (`exact`; `straight_through`,
  a surrogate built into its forward such as VQUNet's STE; or `identity`, BPDA);
- `stochastic`: whether `purify` is random (then the pipeline threat applies EOT).

It may offer, each with a default that means "none":

- `decide(classifier, x) -> {decision: predicted classes}`: decisions of its own beside the
  classifier on its reconstruction (voting: `vote`, `bayes`); eval writes `<decision>_acc`. A
  decision of shape (N, M) holds M members' predictions, and its column is their mean accuracy
  (voting: `voter_mean`, the baseline the source compares the vote with);
- `analyses`: measurements beyond accuracy (`Analysis`), run by `eval.analyses=[<name>]`;
- `export_refusal`: why `src.export` cannot trace it to TorchScript (empty: it can).

It comes in one of three forms, and `src.train`, `src.eval` and `src.api` ask only which:

- `TrainedPurifier` (a LightningModule): has weights; `src.train defense=<name>` fits it and
  publishes `checkpoints/<data>/<name>.ckpt`. It passes `name, data, input_shape,
  num_classes` through to `TrainedPurifier.__init__`, logs `val/recon` (or sets
  `checkpoint_monitor`) from `_eval_step`, and lists in `test_time_hparams` the settings that
  only steer purification, which the config then overrides at load;
- `CompositeDefense`: assembled from other trained checkpoints (`from_checkpoints`), no
  weights of its own; `prepare` computes what it needs beyond them (`src.train task=tables`);
- any other `Defense` (`none`): built directly from its config.

docs/adding_a_defense.md walks through a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from torch import nn

from src.attacks.base import attack_class
from src.defenses.components.attacked_inputs import TRAIN_INPUTS, AttackedInputs, Attacks
from src.runtime.checkpoints import SelfDescribing
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import FRACTION, ChecksSettings, each, one_of

Gradient = Literal["exact", "straight_through", "identity"]
GRADIENTS = ("exact", "straight_through", "identity")


@dataclass(frozen=True)
class Analysis:
    """A measurement a defense offers beyond accuracy, written as a long table.

    `measure(defense, classifier, x, x_adv, y, batch_size, seed)` returns rows of the values
    of `columns` followed by the measured value; eval appends them, with the cell's key, to
    `<results_dir>/<name>.csv` and writes this layout beside it (`<name>.layout.json`), from
    which the report draws one figure per cell, one panel per metric, `axis` along x and one
    line per value of `lines` (labelled by `line_label`), importing no defense.
    """

    name: str
    columns: tuple[str, ...]  # its own columns, "metric" first
    measure: Callable[..., list[tuple]]
    axis: str  # "eps" or one of `columns`
    lines: tuple[str, ...]
    line_label: str  # a format string over the row, e.g. "{defense} d{depth}"
    title: str
    axis_label: str = "eps"
    description: str = ""
    adversarial_only: bool = False  # measured at eps > 0 only

    def layout(self) -> dict[str, Any]:
        keys = ("columns", "axis", "lines", "line_label", "title", "axis_label", "description")
        return {key: getattr(self, key) for key in keys}


class Defense(ChecksSettings, nn.Module):
    name: str
    gradient: Gradient
    stochastic: bool = False
    export_refusal: ClassVar[str] = ""  # why src.export cannot take it out, if it cannot
    analyses: ClassVar[tuple[Analysis, ...]] = ()
    settings_since: ClassVar[dict[str, Any]] = {}
    """Settings added after models were trained and evaluated, each with the value that does what
    the code did before: at that value fingerprints leave it out (`fingerprinted`), so adding an
    option does not make every finished model and row look undone."""

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def retrained_on(cls, cfg: Any) -> str:
        """The purifier whose outputs a target retrained for this defense learned from."""
        return cfg.name

    @classmethod
    def upstream(cls, cfg: Any) -> list[Path]:
        """The checkpoints its training learns from besides the data (none by default)."""
        return []

    def decide(self, classifier: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}


class TrainedPurifier(SelfDescribing, Defense, pl.LightningModule):
    """What every purifier trained by `src.train` shares: its identity and hyperparameters
    saved in self-describing checkpoints, the best epoch kept by validation reconstruction
    error, and one `_eval_step` for val and test."""

    kind = "defense"
    checkpoint_monitor = ("val/recon", "min")
    test_time_hparams: ClassVar[tuple[str, ...]] = ()
    rules = {"train_inputs": one_of(*TRAIN_INPUTS), "eps": each(FRACTION)}

    def __init__(
        self,
        name: str,
        data: str,
        input_shape: Sequence[int],
        num_classes: int,
        train_inputs: str = "clean",
        attacker: str | None = None,
        attacks: Attacks | None = None,
        eps: Sequence[float] = (0.05, 0.1, 0.2, 0.3),
    ) -> None:
        """`train_inputs`, `attacker`, `attacks`, `eps`: what it is trained on (AttackedInputs)."""
        super().__init__()
        # Lightning collects the arguments of every __init__ up the call chain, so the
        # subclass's own settings are saved too and `cls(**hparams)` rebuilds it
        self.save_hyperparameters()
        type(self).check_settings(self.hparams, "defense")  # the subclass's settings are in hparams too
        self.name = name
        self.channels, self.size = int(input_shape[0]), int(input_shape[-1])
        self.inputs = AttackedInputs(train_inputs, attacker, attacks or {}, eps)

    @classmethod
    def upstream(cls, cfg: Any) -> list[Path]:
        """The target its attacked training inputs are crafted on, when they are attacked."""
        return [Path(cfg.attacker)] if cfg.get("train_inputs", "clean") != "clean" else []

    @classmethod
    def check_settings(cls, settings: Any, where: str) -> None:
        """Its own rules, and those of each attack it crafts its training inputs with."""
        super().check_settings(settings, where)
        for key, node in (settings.get("attacks") or {}).items():
            if isinstance(node, Mapping) and "_target_" in node:
                attack_class(node["_target_"], ours_only=True).check_settings(node, f"{where}.attacks.{key}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.purify(x)

    @staticmethod
    def effective(hparams: dict[str, Any]) -> dict[str, Any]:
        """The settings that shape what it learns: the crafting ones only when inputs are attacked."""
        if hparams.get("train_inputs") == "clean":
            return {k: v for k, v in hparams.items() if k not in ("attacker", "attacks", "eps")}
        return hparams

    def on_fit_start(self) -> None:
        self.inputs.start(self.hparams.data, self.hparams.input_shape, self.device)

    def training_inputs(self, x: torch.Tensor, y: torch.Tensor, train: bool) -> torch.Tensor:
        """The inputs whose purification should be the clean x (`defense.train_inputs`)."""
        if self.inputs.mode != "clean" and self.inputs.frozen is None:  # test after fit reloads weights only
            self.on_fit_start()
        return self.inputs(x, y, train)

    def _eval_step(self, batch, stage: str) -> None:
        raise NotImplementedError

    def log_eval(self, stage: str, metrics: dict[str, torch.Tensor], x: torch.Tensor) -> None:
        """An eval step's metrics under `<stage>/`, with `<stage>/clean_recon` (the error on clean x,
        by the mean squared error) when it trains on attacked inputs."""
        if self.inputs.mode != "clean":
            metrics = metrics | {"clean_recon": torch.nn.functional.mse_loss(self.purify(x), x)}
        self.log_dict(
            {f"{stage}/{k}": v for k, v in metrics.items()}, prog_bar=stage == "val", batch_size=len(x)
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")


class CompositeDefense(Defense):
    """A defense assembled from other trained models' checkpoints (e.g. voting)."""

    export_refusal = "it decides with its parts, which purify alone does not carry: export each part"

    @classmethod
    def from_checkpoints(
        cls,
        cfg: DictConfig,
        data: str,
        checkpoint_dir: str | Path,
        input_shape: tuple[int, ...] | None,
        classifier: str | None = None,
    ) -> CompositeDefense:
        """Build it; `classifier` names the target it serves, when its parts depend on one."""
        raise NotImplementedError

    @classmethod
    def part_paths(
        cls,
        cfg: DictConfig,
        data: str,
        checkpoint_dir: str | Path,
        input_shape: Sequence[int],
        classifier: str | None,
    ) -> list[Path]:
        """Every checkpoint it is built from, for the fingerprint of the rows it gives."""
        raise NotImplementedError

    @classmethod
    def parts_to_train(cls, cfg: DictConfig, limit: int | None) -> tuple[list[tuple[str, str]], list[str]]:
        """What a reproduction trains for it: (classifier, purifier) pairs, each classifier
        retrained on that purifier's outputs (at most `limit`; None: all), and the overrides that
        narrow it to them."""
        return [], []

    @classmethod
    def prepared_path(
        cls, cfg: DictConfig, checkpoint_dir: str | Path, data: str, classifier: str, shape: Sequence[int]
    ) -> Path:
        """Where `prepare` saves what it computes for the target `classifier`."""
        raise AdvPurifyError(f"defense={cfg.name} prepares nothing: task=tables is for voting defenses")

    @classmethod
    def prepare(cls, cfg: DictConfig) -> dict[str, Any]:
        """`src.train task=tables`: compute and save what it needs beyond its parts."""
        raise AdvPurifyError(f"defense={cfg.name} has nothing to prepare: task=tables is for voting defenses")

    @classmethod
    def parts_hint(cls, cfg: DictConfig) -> str:
        """How a user builds its parts, for the error that refuses to train it."""
        return f"see conf/defense/{cfg.name}.yaml"


def defense_class(target: str) -> type[Defense]:
    """The class a defense config names, once it is known to keep the contract."""
    cls = get_class(target)
    if not (isinstance(cls, type) and issubclass(cls, Defense)):
        raise AdvPurifyError(f"defense _target_ {target} is not a Defense (src/defenses/base.py)")
    return cls


def fingerprinted(settings: dict[str, Any]) -> dict[str, Any]:
    """A defense config's settings as fingerprints see them: those of `settings_since` at their
    earlier behaviour's value left out."""
    since = defense_class(settings["_target_"]).settings_since
    return {k: v for k, v in settings.items() if not (k in since and v == since[k])}


def checked(defense: Defense) -> Defense:
    """A built defense, once its declarations are ones the threat models know."""
    if getattr(defense, "gradient", None) not in GRADIENTS:
        raise AdvPurifyError(f"defense {defense.name} must declare gradient as one of {list(GRADIENTS)}")
    if not isinstance(defense.stochastic, bool):
        raise AdvPurifyError(f"defense {defense.name} must declare stochastic as True or False")
    return defense


def check_images(x: Any, input_shape: Sequence[int] | None, dtype: torch.dtype | None = None) -> None:
    """What the public API accepts: a non-empty float tensor N x C x H x W of finite pixels in
    [0, 1] (the shape and float type the model was trained in, when they are known). The one
    place API inputs are checked, so a bad one stops with its fix, not deep in a forward pass."""
    if not torch.is_tensor(x):
        raise AdvPurifyError(f"x is a {type(x).__name__}: give a torch tensor N x C x H x W")
    if not x.is_floating_point():
        raise AdvPurifyError(f"x has dtype {x.dtype}: give float pixels in [0, 1] (e.g. x.float() / 255)")
    if dtype is not None and x.dtype != dtype:
        raise AdvPurifyError(f"x has dtype {x.dtype}, but the model computes in {dtype}: pass x.to({dtype})")
    if x.dim() != 4:
        raise AdvPurifyError(
            f"x has shape {tuple(x.shape)}: give a batch N x C x H x W (x[None] for one image)"
        )
    if len(x) == 0:
        raise AdvPurifyError("x holds no images: give a batch of at least one")
    if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
        raise AdvPurifyError(
            f"x has images of shape {tuple(x.shape[1:])}, but the model takes {tuple(input_shape)}: "
            "resize or pad them (Fashion-MNIST at 32x32 is zero-padded, SPEC 1)"
        )
    if not torch.isfinite(x).all():
        raise AdvPurifyError("x holds NaN or inf pixels: give finite pixels in [0, 1]")
    if x.min() < 0 or x.max() > 1:
        raise AdvPurifyError(
            f"x has pixels in [{x.min().item():.3g}, {x.max().item():.3g}]: give pixels in [0, 1], "
            "not normalised by a mean and std (SPEC 1)"
        )


def check_labels(y: Any, n: int, num_classes: int) -> None:
    """Labels for n images: an integer tensor of shape (n,) with classes 0..num_classes-1."""
    if not torch.is_tensor(y) or y.is_floating_point() or y.dtype == torch.bool:
        raise AdvPurifyError(f"y must be a tensor of {n} integer class labels (e.g. torch.tensor(labels))")
    if tuple(y.shape) != (n,):
        raise AdvPurifyError(f"y has shape {tuple(y.shape)}: give one label per image of x, shape ({n},)")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise AdvPurifyError(
            f"y holds labels in [{y.min().item()}, {y.max().item()}], but the model has {num_classes} "
            f"classes: give labels in 0..{num_classes - 1}"
        )


def parameter_dtype(module: nn.Module) -> torch.dtype | None:
    """The float type a module computes in (None for one without parameters)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), None)


class DefendedClassifier(nn.Module):
    """Purify, then classify: the whole defended model as one module (logits out). Given
    `input_shape` (the API's `defended()` does), it checks every input first."""

    def __init__(
        self, classifier: nn.Module, defense: Defense, input_shape: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.classifier, self.defense = classifier, defense
        self.input_shape = tuple(input_shape) if input_shape is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_shape is not None:
            check_images(x, self.input_shape, parameter_dtype(self.classifier))
        return self.classifier(self.defense.purify(x))
