"""`python -m src.train`: fit a classifier, test its best epoch, publish it to checkpoints/.

The best validation epoch is tested on the whole test split (clean accuracy) and copied to
`checkpoints/<data>/<classifier>.ckpt`, where `src.eval` and `src.api` find it by name.
"""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.checkpoints import publish, stable_path
from src.classifiers.module import ClassifierModule
from src.console import console, print_config, user_errors
from src.errors import AdvPurifyError
from src.loggers import build_loggers, close_loggers


def train(cfg: DictConfig) -> dict[str, float | str]:
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data.module)
    spec = OmegaConf.to_container(cfg.classifier, resolve=True)
    module = ClassifierModule(
        name=cfg.classifier.name,
        data=datamodule.name,
        input_shape=datamodule.input_shape,
        num_classes=datamodule.num_classes,
        net=spec["net"],
        optimizer=spec["optimizer"],
        scheduler=spec["scheduler"],
    )
    loggers = build_loggers(cfg)
    callbacks = [instantiate(node) for node in (cfg.callbacks or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    if trainer.checkpoint_callback is None:
        raise AdvPurifyError(
            "callbacks.model_checkpoint is missing: src.train publishes the best checkpoint it keeps"
        )
    trainer.fit(module, datamodule=datamodule)
    best = trainer.checkpoint_callback.best_model_path
    (test,) = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    dest = stable_path(cfg.paths.checkpoint_dir, datamodule.name, cfg.classifier.name)
    publish(best, dest)
    close_loggers(loggers)
    metrics = {
        "val/acc": float(trainer.checkpoint_callback.best_model_score),
        **test,
        "checkpoint": str(dest),
    }
    scores = f"val/acc={metrics['val/acc']:.4f}  test/acc={test['test/acc']:.4f}"
    console.print(f"[bold green]best checkpoint[/] {dest}  {scores}")
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    print_config(cfg)
    with user_errors():
        return train(cfg)["val/acc"]


if __name__ == "__main__":
    main()
