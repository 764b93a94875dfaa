"""`python -m src.train`: fit a classifier or a purifier, test its best epoch, publish it.

With `defense=none` it trains `classifier=`; with a defense that has weights it trains that
defense instead; with `task=retrain` it trains the classifier on that defense's outputs;
with `task=tables` it counts a voting defense's Bayesian-update tables on the training set.
The best validation epoch (by the module's own `checkpoint_monitor`) is
tested on the whole test split and copied to `checkpoints/<data>/<name>.ckpt`, where
`src.eval` and `src.api` find it by name.
"""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from src import checkpoints
from src.api import CONF_DIR, build_defense, load_classifier, target_name
from src.checkpoints import publish, stable_path
from src.classifiers.module import ClassifierModule
from src.console import console, print_config, user_errors
from src.data.base import ImageDataModule
from src.defenses.base import needs_training
from src.defenses.vote import tables_path
from src.device import resolve_device, trainer_devices
from src.errors import AdvPurifyError
from src.loggers import build_loggers, close_loggers

TASKS = ("fit", "retrain", "tables")


def build_module(cfg: DictConfig, datamodule: ImageDataModule) -> pl.LightningModule:
    """The module `cfg` asks to train.

    task=fit trains the defense if it has weights, else the classifier. task=retrain trains
    the classifier on the defense's outputs (SPEC 3.3 protocol), under the name
    `<classifier>+<defense>` that `src.eval retrained=true` loads.
    """
    if cfg.task not in TASKS:
        raise AdvPurifyError(f"task={cfg.task} is unknown: choose one of {list(TASKS)}")
    shape = {
        "data": datamodule.name,
        "input_shape": datamodule.input_shape,
        "num_classes": datamodule.num_classes,
    }
    name = cfg.classifier.name
    if cfg.task == "fit" and needs_training(cfg.defense._target_):
        return instantiate(cfg.defense, _convert_="all", **shape)
    if cfg.task == "retrain":
        if cfg.defense.name == "none":
            raise AdvPurifyError("task=retrain trains on a purifier's outputs: choose one with defense=")
        ckpt_dir, size = cfg.paths.checkpoint_dir, datamodule.input_shape
        defense = build_defense(cfg.defense, datamodule.name, cfg.defense_ckpt, ckpt_dir, size)
        device = resolve_device(cfg.device)
        defense.to(device)
        datamodule.map_images(lambda x: defense.purify(x.to(device)).cpu(), cfg.eval.batch_size)
        name = target_name(name, cfg.defense, retrained=True)
    spec = OmegaConf.to_container(cfg.classifier, resolve=True)
    nets = {"net": spec["net"], "optimizer": spec["optimizer"], "scheduler": spec["scheduler"]}
    return ClassifierModule(name, **shape, **nets)


def count_tables(cfg: DictConfig) -> dict[str, float | str]:
    """SPEC 3.1: p(e_B | c) and p(e_A | e_B, c) counted on the training split, saved by name."""
    if not hasattr(get_class(cfg.defense._target_), "count_tables"):
        raise AdvPurifyError(
            "task=tables counts a voting defense's tables (e.g. defense=sfl_vae_vote), "
            f"not defense={cfg.defense.name}"
        )
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    data, shape, ckpt_dir = datamodule.name, datamodule.input_shape, cfg.paths.checkpoint_dir
    device = resolve_device(cfg.device)
    defense = build_defense(cfg.defense, data, None, ckpt_dir, shape).to(device)
    name = target_name(cfg.classifier.name, cfg.defense, cfg.retrained)
    classifier = load_classifier(data, name, cfg.ckpt, ckpt_dir, shape).to(device)
    x, y = (t.to(device) for t in datamodule.splits["train"][:])
    tables = defense.count_tables(classifier, x, y, cfg.eval.batch_size, cfg.defense.prior)
    dest = tables_path(ckpt_dir, data, cfg.defense.name, name)
    hparams = {"num_classes": datamodule.num_classes, "prior": cfg.defense.prior}
    checkpoints.save(tables, dest, "tables", hparams, data, shape)
    console.print(f"[bold green]tables[/] {dest}  (counted on {len(y)} training images, target {name})")
    return {"checkpoint": str(dest)}


def train(cfg: DictConfig) -> dict[str, float | str]:
    if cfg.task == "tables":
        return count_tables(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data.module)
    module = build_module(cfg, datamodule)
    monitor, mode = module.checkpoint_monitor
    if "model_checkpoint" not in (cfg.callbacks or {}):
        raise AdvPurifyError(
            "callbacks.model_checkpoint is missing: src.train publishes the best checkpoint it keeps"
        )
    callbacks = [
        instantiate(node, monitor=monitor, mode=mode) if key == "model_checkpoint" else instantiate(node)
        for key, node in cfg.callbacks.items()
    ]
    loggers = build_loggers(cfg)
    devices = trainer_devices(cfg.trainer.accelerator, cfg.trainer.devices)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, devices=devices
    )
    trainer.fit(module, datamodule=datamodule)
    best = trainer.checkpoint_callback.best_model_path
    (test,) = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    dest = stable_path(cfg.paths.checkpoint_dir, datamodule.name, module.hparams.name)
    publish(best, dest)
    close_loggers(loggers)
    metrics = {monitor: float(trainer.checkpoint_callback.best_model_score), **test, "checkpoint": str(dest)}
    scores = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "checkpoint")
    console.print(f"[bold green]best checkpoint[/] {dest}  {scores}")
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    print_config(cfg)
    with user_errors():
        metrics = train(cfg)
    return next((v for k, v in metrics.items() if k.startswith("val/")), None)


if __name__ == "__main__":
    # Run the importable src.train.main, not this __main__ copy: parallel launchers (joblib,
    # submitit) pickle the task function, and a function from __main__ would be pickled by
    # value with everything it references (the console's lock cannot be).
    from src.train import main as importable_main

    importable_main()
