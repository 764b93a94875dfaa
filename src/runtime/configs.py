"""The project's Hydra configs, composed as the entry points see them, for code that is not
itself a Hydra main (the API, the reproduction's plan, the cards)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig

from src.runtime.errors import AdvPurifyError
from src.runtime.yamlfiles import read_yaml

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def options(group: str) -> list[str]:
    """The configs of one group, by name: conf/'s files and those a plugin registered in Hydra's
    ConfigStore (none for a key that is not a group)."""
    from hydra.core.config_store import ConfigStore

    try:
        stored = {name.removesuffix(".yaml") for name in ConfigStore.instance().list(group)}
    except OSError:  # no plugin registered that group
        stored = set()
    return sorted({p.stem for p in (CONF_DIR / group).glob("*.yaml")} | stored)


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


def require_readable_conf(folder: Path = CONF_DIR) -> None:
    """Refuse, before Hydra composes anything, a conf/ file that is not YAML: Hydra would stop
    with a parser's traceback from deep inside its loader."""
    for path in sorted(folder.rglob("*.yaml")):
        read_yaml(path)
