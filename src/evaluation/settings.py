"""Every number a user can type, checked at startup against what it means.

Hydra's struct mode already refuses unknown keys and options; this refuses known keys with
values that would fail later, deep in a run, or silently give a wrong number. Rules go by the
key's own name wherever it appears in the config, so a new defense or attack whose settings
use these names is checked without a line here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.defenses.components.attacked_inputs import TRAIN_INPUTS
from src.defenses.cyclegan import DOMAINS
from src.evaluation.threats import WHITE_BOX
from src.runtime.errors import AdvPurifyError


def whole_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def number(check: Callable[[float], bool]) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and check(v)

    return ok


COUNT = (whole_at_least(1), "a whole number >= 1")
POSITIVE = (number(lambda v: v > 0), "a finite number > 0")
NON_NEGATIVE = (number(lambda v: v >= 0), "a finite number >= 0")
FRACTION = (number(lambda v: 0 <= v <= 1), "a number in [0, 1]")
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **dict.fromkeys(
        (
            "n",
            "batch_size",
            "eval_batch_size",
            "max_epochs",
            "max_iter",
            "max_steps_per_epoch",
            "width",
            "depth",
            "max_width",
            "latent_dim",
            "decoder_width",
            "z_dim",
            "disc_width",
            "disc_layers",
            "critic_width",
            "n_critic",
            "restarts",
            "steps",
            "val_restarts",
            "val_steps",
            "draws",
            "eot_samples",
            "image_size",
            "train_limit",
            "val_limit",
            "test_limit",
            "res_blocks",
            "binary_search_steps",
            "nb_grads",
            "log_every_n_steps",
            "jobs",
            "part_size",
        ),
        COUNT,
    ),
    **dict.fromkeys(
        ("lr", "search_lr", "learning_rate", "rel_step", "step", "prior_std", "atol", "budget_minutes"),
        POSITIVE,
    ),
    **dict.fromkeys(
        (
            "rec_weight",
            "kl_weight",
            "sfl_weight",
            "cycle_weight",
            "identity_weight",
            "gp_weight",
            "alpha",
            "beta",
            "confidence",
            "overshoot",
        ),
        NON_NEGATIVE,
    ),
    **dict.fromkeys(("mix", "dropout", "ema_omega", "decay_from"), FRACTION),
}
BOOLEAN = (lambda v: isinstance(v, bool), "true or false")
RULES |= dict.fromkeys(("resume", "recompute", "retrained", "defended", "dry_run"), BOOLEAN)
RULES["seed"] = (whole_at_least(0), "a whole number >= 0")
RULES["white_box"] = (lambda v: v in WHITE_BOX, f"one of {list(WHITE_BOX)}")
RULES["train_inputs"] = (lambda v: v in TRAIN_INPUTS, f"one of {list(TRAIN_INPUTS)}")
RULES["domains"] = (lambda v: v in DOMAINS, f"one of {list(DOMAINS)}")
SKIP = (
    "hydra",
    "paths",
    "published",
    "logger",
    "callbacks",
    "launcher",
    "reproduce",
)  # not the run's numbers


def validate(cfg: DictConfig) -> None:
    """Refuse, with the key and what it must be, the first value that breaks its rule, and a
    value a config leaves to the command line (`???`) that was not given there."""
    missing = _missing(cfg, "")
    if missing:
        raise AdvPurifyError(f"{missing} has no value: set it on the command line ({missing}=...)")
    _walk(cfg, "")


def _missing(node: DictConfig, path: str) -> str | None:
    """The first key left `???`, read without resolving (a Hydra interpolation may have no Hydra)."""
    for key in node:
        if OmegaConf.is_missing(node, key):
            return f"{path}{key}"
        child = node._get_node(key)
        found = _missing(child, f"{path}{key}.") if isinstance(child, DictConfig) else None
        if found:
            return found
    return None


def _walk(node: DictConfig, path: str) -> None:
    for key in node:
        if not path and key in SKIP:
            continue
        child = node._get_node(key)  # unresolved: only the values with a rule are read
        if isinstance(child, DictConfig):
            _walk(child, f"{path}{key}.")
        elif str(key) in RULES:
            value = node[key]
            ok, meaning = RULES[str(key)]
            if value is not None and not ok(value):
                raise AdvPurifyError(f"{path}{key}={value!r}: it must be {meaning}")
