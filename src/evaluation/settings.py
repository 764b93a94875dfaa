"""Every run-level number a user can type, checked at startup against what it means; the
parts (`defense`, `attack`, `threat`) check their own settings, each by the rules declared
next to its class (src/runtime/rules.py), asked here before any work.

Hydra's struct mode already refuses unknown keys and options; this refuses known keys with
values that would fail later, deep in a run, or silently give a wrong number. Run-level rules
go by the key's own name wherever it appears outside the parts.
"""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from src.attacks.base import attack_class
from src.defenses.base import defense_class
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import BOOLEAN, COUNT, NON_NEGATIVE, POSITIVE, Rule, whole_at_least

RULES: dict[str, Rule] = {
    **dict.fromkeys(
        (
            "n",
            "batch_size",
            "eval_batch_size",
            "max_epochs",
            "max_steps_per_epoch",
            "image_size",
            "train_limit",
            "val_limit",
            "test_limit",
            "log_every_n_steps",
            "jobs",
            "part_size",
        ),
        COUNT,
    ),
    **dict.fromkeys(("lr", "atol", "budget_minutes"), POSITIVE),
    **dict.fromkeys(("resume", "recompute", "retrained", "defended", "dry_run"), BOOLEAN),
    "seed": whole_at_least(0),
    "patience": whole_at_least(0),  # callbacks=plateau
    "min_delta": NON_NEGATIVE,
}
PARTS = ("defense", "attack", "threat")  # each checks its own settings
SKIP = (
    "hydra",
    "paths",
    "published",
    "logger",
    "launcher",
    "reproduce",
    *PARTS,
)  # not the run's numbers, or a part's own


def validate(cfg: DictConfig) -> None:
    """Refuse, with the key and what it must be, the first value that breaks its rule, and a
    value a config leaves to the command line (`???`) that was not given there."""
    missing = _missing(cfg, "")
    if missing:
        raise AdvPurifyError(f"{missing} has no value: set it on the command line ({missing}=...)")
    _walk(cfg, "")
    for part, find in (("defense", defense_class), ("attack", attack_class), ("threat", get_class)):
        if part in cfg and cfg[part] is not None and "_target_" in cfg[part]:
            getattr(find(cfg[part]._target_), "check_settings", lambda *_: None)(cfg[part], part)


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
            rule = RULES[str(key)]
            if value is not None and not rule.ok(value):
                raise AdvPurifyError(f"{path}{key}={value!r}: it must be {rule.meaning}")
