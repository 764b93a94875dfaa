"""Experiment loggers from `logger=` (W&B offline + CSV by default), shared by train and eval.

In a Hydra multirun every W&B run joins one group named after the sweep, so a sweep's runs
sit together in the W&B UI; a single run keeps the config's group.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from src.runtime.errors import AdvPurifyError


def sweep_group() -> str | None:
    """`<entry>-<sweep dir name>` inside a Hydra multirun, else None."""
    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    return f"{hydra.job.name}-{Path(hydra.sweep.dir).name}"


WANDB_MODES = ("offline", "online", "disabled")


def build_loggers(cfg: DictConfig) -> list[Logger]:
    mode = (cfg.logger or {}).get("wandb", {}).get("mode")
    if mode is not None and mode not in WANDB_MODES:
        raise AdvPurifyError(
            f"logger.wandb.mode={mode!r}: choose one of {list(WANDB_MODES)} (or set WANDB_MODE to one)"
        )
    group = sweep_group()
    loggers = [
        instantiate(node, group=group) if group and "group" in node else instantiate(node)
        for node in (cfg.logger or {}).values()
    ]
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def log_results(loggers: list[Logger], rows: list[dict[str, Any]], title: str) -> None:
    """An eval run's rows as a W&B Table, with its accuracy-vs-eps chart (W&B loggers only)."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger) or not rows:
            continue
        import wandb  # only where the W&B logger was chosen: the GPU image lacks it

        columns = list(rows[0])
        table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        chart = wandb.plot.line(table, "eps", "adv_acc", title=f"accuracy vs eps: {title}")
        logger.experiment.log({"results": table, "accuracy_vs_eps": chart})


def log_grid(loggers: list[Logger], key: str, picture: Any, caption: str) -> None:
    """A cell's image grid (src/grids.py) as a W&B image (W&B loggers only)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[picture], caption=[caption])


def close_loggers(loggers: list[Logger]) -> None:
    """Flush every logger and end the W&B run, so the next run in this process starts its own."""
    for logger in loggers:
        logger.finalize("success")
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
