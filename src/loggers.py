"""Experiment loggers from `logger=` (W&B offline + CSV by default), shared by train and eval."""

from __future__ import annotations

import sys

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger


def build_loggers(cfg: DictConfig) -> list[Logger]:
    loggers = [instantiate(node) for node in (cfg.logger or {}).values()]
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def close_loggers(loggers: list[Logger]) -> None:
    """Flush every logger and end the W&B run, so the next run in this process starts its own."""
    for logger in loggers:
        logger.finalize("success")
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
