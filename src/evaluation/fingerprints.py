"""What decides a run's numbers, beyond its results key: the settings and the content of every
checkpoint it uses (the target, the defense's, the crafting's). A row carries both digests, so
a rerun knows its cell is done and a card knows which rows its checkpoint earned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.defenses.base import CompositeDefense, TrainedPurifier, defense_class, fingerprinted
from src.evaluation.models import target_name
from src.reporting.rows import fingerprint
from src.runtime.checkpoints import stable_path
from src.runtime.configs import CONF_DIR

NOT_A_VARIANT = frozenset({"name", "eps", "batch_size"})  # the grid's axis, a name, a chunk size


def named_variant(node: DictConfig, group: str) -> str:
    """What a row calls its attack or threat: the config's name, with every setting that
    differs from the named config (`conf/<group>/<name>.yaml`) in brackets, e.g.
    `pgd[norm=2]` or `pipeline[eot_samples=16]`. So the row's key tells apart what changes its
    numbers: an L2 PGD never replaces the L-inf one in a table or a report. A config renamed
    from another class (`attack=cw_art attack.name=cw`) keeps the name it was given."""
    path = CONF_DIR / group / f"{node.name}.yaml"
    if not path.exists():
        return str(node.name)
    named = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if named.get("_target_") != node.get("_target_"):
        return str(node.name)
    ours = OmegaConf.to_container(node, resolve=True)
    changed = [
        f"{key}={shown(ours.get(key))}"
        for key in sorted(set(ours) | set(named))
        if key not in NOT_A_VARIANT
        and not key.startswith("_")
        and not (isinstance(named.get(key), str) and "${" in named[key])  # resolved elsewhere
        and ours.get(key) != named.get(key)
    ]
    return f"{node.name}[{','.join(changed)}]" if changed else str(node.name)


def shown(value: Any) -> str:
    """A setting's value as a row's name shows it: a list as its items joined by '+'."""
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def white_box_name(cfg: DictConfig, scored: str) -> str:
    """The classifier a threat's white-box share is crafted on: the scored one, unless the threat
    chooses (`threat.white_box`, SPEC 4.3) and has a white-box share (`threat.mix` < 1). A defense
    without weights has no retrained target, so for it both choices name the original classifier."""
    choice = cfg.threat.get("white_box")
    weighted = issubclass(defense_class(cfg.defense._target_), (TrainedPurifier, CompositeDefense))
    if choice is None or not weighted or cfg.threat.get("mix", 0) >= 1:  # mix 1: no white-box share
        return scored
    return target_name(cfg.classifier.name, cfg.defense, choice == "retrained")


def crafting_files(cfg: DictConfig, data: str, classifier: str, shape: tuple[int, ...]) -> list[Path]:
    """The checkpoints an oblivious threat crafts on: the target, its white-box choice, surrogates."""
    ckpt_dir = cfg.paths.checkpoint_dir
    files = [Path(cfg.ckpt or stable_path(ckpt_dir, data, classifier, shape))]
    if white_box_name(cfg, classifier) != classifier:
        files.append(stable_path(ckpt_dir, data, white_box_name(cfg, classifier), shape))
    return files + [stable_path(ckpt_dir, data, s, shape) for s in cfg.threat.get("surrogates", [])]


def run_fingerprint(cfg: DictConfig, data: str, classifier: str, shape: tuple[int, ...]) -> tuple[str, str]:
    """What decides this run's numbers beyond its results key (see `results.fingerprint`), and
    the part of it that is the models alone (the `models` column)."""
    settings = {
        key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("attack", "defense", "threat")
    }
    settings["defense"] = fingerprinted(settings["defense"])
    settings |= {"data": OmegaConf.to_container(cfg.data, resolve=True), "n": cfg.eval.n, "seed": cfg.seed}
    settings |= {"analyses": sorted(cfg.eval.analyses)}  # their rows come with the cell
    if cfg.eval.part_size is not None:  # absent when null, so rows from before the key still count
        settings["part_size"] = cfg.eval.part_size
    files = run_files(cfg, data, classifier, shape)
    return fingerprint(settings, files), fingerprint({}, files)


def run_files(cfg: DictConfig, data: str, classifier: str, shape: tuple[int, ...]) -> list[Path]:
    """Every checkpoint a run's numbers depend on: the target, the defense's, the crafting's."""
    ckpt_dir = cfg.paths.checkpoint_dir
    target, *others = crafting_files(cfg, data, classifier, shape)
    files = [target]
    cls = defense_class(cfg.defense._target_)
    if issubclass(cls, CompositeDefense):
        files += cls.part_paths(cfg.defense, data, ckpt_dir, shape, classifier)
    elif issubclass(cls, TrainedPurifier):
        files.append(Path(cfg.defense_ckpt or stable_path(ckpt_dir, data, cfg.defense.name, shape)))
    return files + others
