"""`python -m src.train`: fit a classifier or a purifier, test its best epoch, publish it.

With `defense=none` it trains `classifier=`; with a defense that has weights it trains that
defense instead; with `task=retrain` it trains the classifier on that defense's outputs;
with `task=tables` it prepares a composite defense (voting: counts its Bayesian-update tables
on the training set).
The best validation epoch (by the module's own `checkpoint_monitor`) is
tested on the whole test split and copied to `checkpoints/<data>/<size>px/<name>.ckpt`, where
`src.eval` and `src.api` find it by name.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, ListConfig, OmegaConf

from src.classifiers.module import ClassifierModule
from src.data.base import ImageDataModule
from src.defenses.base import CompositeDefense, TrainedPurifier, defense_class, fingerprinted
from src.evaluation.models import build_defense, target_name
from src.evaluation.settings import validate
from src.reporting.rows import fingerprint, portable, require_writable
from src.runtime.callbacks import LatestCheckpoint, StopAtDeadline, StopOnNonFinite
from src.runtime.checkpoints import publish, read, retrained_name, stable_path, training_stamp
from src.runtime.configs import CONF_DIR, require_readable_conf
from src.runtime.console import console, print_config, user_errors
from src.runtime.deadline import OutOfTime
from src.runtime.devices import resolve_device, trainer_devices
from src.runtime.errors import AdvPurifyError, build
from src.runtime.locks import alone
from src.runtime.loggers import build_loggers, close_loggers

TASKS = ("fit", "retrain", "tables")


def build_module(cfg: DictConfig, datamodule: ImageDataModule) -> pl.LightningModule:
    """The module `cfg` asks to train.

    task=fit trains the defense if it has weights (a `TrainedPurifier`), the classifier when
    defense=none, and refuses a defense assembled from other models (it has nothing to fit,
    and fitting the classifier instead would replace the published one). task=retrain trains
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
    cls = defense_class(cfg.defense._target_)
    if cfg.task == "fit" and issubclass(cls, TrainedPurifier):
        return build(cfg.defense, _convert_="all", **shape)
    if cfg.task == "fit" and issubclass(cls, CompositeDefense):
        raise AdvPurifyError(
            f"defense={cfg.defense.name} has no weights of its own to train: {cls.parts_hint(cfg.defense)}"
        )
    if cfg.task == "retrain":
        if not issubclass(cls, TrainedPurifier):
            raise AdvPurifyError(
                "task=retrain trains on a trained purifier's outputs: choose one with defense= "
                f"(e.g. defense=vqunet), not defense={cfg.defense.name}"
            )
        name = retrained_name(name, cfg.defense.name)
    spec = OmegaConf.to_container(cfg.classifier, resolve=True)
    nets = {"net": spec["net"], "optimizer": spec["optimizer"], "scheduler": spec["scheduler"]}
    return ClassifierModule(name, **shape, **nets)


def purify_training_data(cfg: DictConfig, datamodule: ImageDataModule) -> None:
    """task=retrain: the classifier learns from the purifier's outputs (SPEC 3.3 protocol)."""
    ckpt_dir, size = cfg.paths.checkpoint_dir, datamodule.input_shape
    defense = build_defense(cfg.defense, datamodule.name, cfg.defense_ckpt, ckpt_dir, size)
    device = resolve_device(cfg.device)
    defense.to(device)
    datamodule.map_images(lambda x: defense.purify(x.to(device)).cpu(), cfg.eval.batch_size)


def prepare(cfg: DictConfig) -> dict[str, float | str]:
    """task=tables: what a composite defense computes beyond its parts (voting: its tables)."""
    cls = defense_class(cfg.defense._target_)
    if not issubclass(cls, CompositeDefense):
        raise AdvPurifyError(
            "task=tables counts a voting defense's tables (e.g. defense=sfl_vae_vote), "
            f"not defense={cfg.defense.name}"
        )
    datamodule = build(cfg.data.module)
    stamp = training_fingerprint(cfg, datamodule.name, datamodule.input_shape)
    made = cls.prepare(cfg)
    publish(made["checkpoint"], Path(made["checkpoint"]), stamp)
    return made


def upstream(cfg: DictConfig, data: str, shape: tuple[int, ...]) -> list[Path]:
    """The checkpoints a training run learns from besides the data: the purifier a retrained
    classifier learns its outputs of, the target a purifier's attacked inputs are crafted on,
    and the parts and target a composite's tables are counted with."""
    ckpt_dir = cfg.paths.checkpoint_dir
    cls = defense_class(cfg.defense._target_)
    if cfg.task == "retrain":
        return [Path(cfg.defense_ckpt or stable_path(ckpt_dir, data, cfg.defense.name, shape))]
    if cfg.task == "tables":
        target = target_name(cfg.classifier.name, cfg.defense, cfg.retrained)
        own = Path(cfg.ckpt or stable_path(ckpt_dir, data, target, shape))
        return [*cls.part_paths(cfg.defense, data, ckpt_dir, shape, None), own]
    return cls.upstream(cfg.defense)


def training_fingerprint(cfg: DictConfig, data: str, shape: tuple[int, ...]) -> str:
    """What decides a trained model, by eval's `fingerprint`: the settings of what is trained
    and how (not where: see `results.portable`) and the content of every upstream checkpoint.
    `publish` stamps it on the checkpoint; an equal stamp means this training is done."""
    purifier = issubclass(defense_class(cfg.defense._target_), TrainedPurifier)
    keys = {
        "fit": ("defense",) if purifier else ("classifier",),
        "retrain": ("classifier", "defense"),
        "tables": ("classifier", "defense", "retrained"),
    }[cfg.task]
    settings = {key: portable(cfg[key]) for key in ("data", "task", "seed", "trainer", *keys)}
    settings |= stopping(cfg)
    if "defense" in settings:
        settings["defense"] = fingerprinted(settings["defense"])
    return fingerprint(settings, upstream(cfg, data, shape))


def trained_name(cfg: DictConfig) -> str:
    """The name of the model the run cfg describes trains (fit, retrain)."""
    if cfg.task == "retrain":
        return retrained_name(cfg.classifier.name, cfg.defense.name)
    if issubclass(defense_class(cfg.defense._target_), TrainedPurifier):
        return cfg.defense.name
    return cfg.classifier.name


def published_path(cfg: DictConfig, data: str, shape: tuple[int, ...]) -> Path:
    """Where the run cfg describes publishes what it trains or counts."""
    ckpt_dir = cfg.paths.checkpoint_dir
    if cfg.task == "tables":
        target = target_name(cfg.classifier.name, cfg.defense, cfg.retrained)
        return defense_class(cfg.defense._target_).prepared_path(cfg.defense, ckpt_dir, data, target, shape)
    return stable_path(ckpt_dir, data, trained_name(cfg), shape, cfg.seed)


def interrupted(cfg: DictConfig) -> bool:
    """Whether the training cfg describes was stopped mid-way (resume=true continues it)."""
    if cfg.task == "tables":
        return False
    datamodule = build(cfg.data.module)
    return (run_dir(cfg, datamodule.name, trained_name(cfg)) / "last.ckpt").exists()


def training_state(cfg: DictConfig) -> tuple[bool, list[Path]]:
    """Whether the model cfg trains is published from this very training (its stamp matches),
    and the checkpoints that decide it: the upstream ones and the published one."""
    if cfg.task not in TASKS:
        raise AdvPurifyError(f"task={cfg.task} is unknown: choose one of {list(TASKS)}")
    datamodule = build(cfg.data.module)
    data, shape = datamodule.name, datamodule.input_shape
    dest = published_path(cfg, data, shape)
    stamp = training_stamp(dest)
    return stamp is not None and stamp == training_fingerprint(cfg, data, shape), [
        *upstream(cfg, data, shape),
        dest,
    ]


def run_dir(cfg: DictConfig, data: str, name: str) -> Path:
    """Where a training run keeps its epoch checkpoints and `last.ckpt`, removed once its model
    is published. The folder is named by what is trained and how (data, model, task, seed,
    trainer), so the same command finds it again under resume=true, and runs that differ,
    such as a sweep's jobs, never share one."""
    keys = ("data", "classifier", "defense", "task", "seed", "trainer")
    settings = {key: portable(cfg[key]) for key in keys}  # the same folder on another machine
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return Path(cfg.paths.checkpoint_dir) / "runs" / data / f"{name}-{digest[:10]}"


def resume_from(cfg: DictConfig, folder: Path) -> str | None:
    """`last.ckpt` to continue from, under resume=true; a fresh run refuses to bury an
    interrupted one."""
    last = folder / "last.ckpt"
    if cfg.resume and not last.exists():
        raise AdvPurifyError(
            f"resume=true, but there is no interrupted run at {last}: run without resume=true"
        )
    if not cfg.resume and last.exists():
        raise AdvPurifyError(
            f"an interrupted run of this model is at {folder}: continue it with resume=true, "
            "or delete that folder to start afresh"
        )
    return str(last) if cfg.resume else None


def plain(value: Any) -> Any:
    """A hyperparameter as JSON would hold it, so a saved one and a fresh one compare equal."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return json.loads(json.dumps(value, default=str))


def defaults(cls: type) -> dict[str, Any]:
    """The default of every keyword setting of cls's __init__ chain."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            params = inspect.signature(vars(klass)["__init__"]).parameters.values()
            found |= {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return found


def recipe(cfg: DictConfig) -> dict[str, Any]:
    """How a model is trained beyond its own hyperparameters: the data and its slices, the
    trainer (epochs, steps, clipping), when it stops early, the task and the seed; not where
    (`portable`)."""
    return plain({key: portable(cfg[key]) for key in ("data", "trainer", "task", "seed")} | stopping(cfg))


def stopping(cfg: DictConfig) -> dict[str, Any]:
    """The early stop a training runs with (`callbacks=plateau`), when it has one: it decides
    how long the model trains, as the epoch count does."""
    node = (cfg.callbacks or {}).get("early_stopping")
    return {"early_stopping": portable(node)} if node is not None else {}


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested setting as {dotted.path: leaf}, so a difference names the very key."""
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, sub in value.items():
            found |= leaves(sub, f"{prefix}{key}.")
        return found
    return {prefix.rstrip("."): value}


def differences(held: dict[str, Any], new: dict[str, Any], shown: int = 4) -> str | None:
    """'key: old -> new; ...' for each leaf both hold with other values, then the settings only
    one of them has (None when nothing differs)."""
    old, now = leaves(held), leaves(new)
    both = sorted(k for k in set(old) & set(now) if old[k] != now[k])
    only = sorted({k.split(".")[0] for k in set(old) ^ set(now)})
    if not both and not only:
        return None
    what = [f"{k}: {old[k]} -> {now[k]}" for k in both[:shown]]
    what += [f"and {len(both) - shown} more"] if len(both) > shown else []
    what += [f"only one has {', '.join(only)}"] if only else []
    return "; ".join(what)


def changed_settings(dest: Path, module: pl.LightningModule, how: dict[str, Any]) -> str | None:
    """How the model published at dest was trained otherwise than module would be, by `how`
    (its `recipe`): None when it was not, or nothing is there. Retraining a model as it was
    may replace it; a model trained otherwise (other settings, fewer epochs, less data) may not.
    """
    if not dest.exists():
        return None
    ckpt = read(dest, module.kind)
    # a setting added since that model was trained held its default there
    effective = getattr(module, "effective", lambda hparams: hparams)
    held = plain(effective(defaults(type(module)) | (ckpt.get("hyper_parameters") or {})))
    found = differences(held, plain(effective(dict(module.hparams))))
    held_recipe = ckpt["advpurify"].get("recipe")
    if found is None and isinstance(held_recipe, dict):  # written before recipes: settings only
        found = differences(held_recipe, how)
    return found


def require_same_settings(dest: Path, module: pl.LightningModule, how: dict[str, Any]) -> None:
    """Refuse, before any training, to replace a published model trained otherwise."""
    what = changed_settings(dest, module, how)
    if what is not None:
        raise AdvPurifyError(
            f"{dest} holds a {module.hparams.name} trained otherwise ({what}): give this one "
            f"a name of its own ({module.kind}.name=<name>) to keep both, or move that file away"
        )


def superseded(cfg: DictConfig) -> str | None:
    """'<published model> (<what changed>)' when training cfg would be refused for replacing a
    model trained otherwise; found without training, so a plan can name them all."""
    if cfg.task == "tables":
        return None
    datamodule = build(cfg.data.module)
    dest = published_path(cfg, datamodule.name, datamodule.input_shape)
    if not dest.exists():  # nothing to replace: spare building the model
        return None
    what = changed_settings(dest, build_module(cfg, datamodule), recipe(cfg))
    return None if what is None else f"{dest} ({what})"


def train(cfg: DictConfig, deadline: float | None = None) -> dict[str, float | str]:
    """Fit, test the best epoch, publish it. With a `deadline` (a `time.time()`), the fit ends
    after the epoch in which it passed: OutOfTime, nothing published, resume=true goes on."""
    validate(cfg)
    if cfg.task == "tables":
        return prepare(cfg)
    if cfg.ckpt is not None:
        raise AdvPurifyError(
            f"src.train does not start from ckpt={cfg.ckpt}: to continue a stopped run give resume=true "
            "(it finds the run's last.ckpt itself); to train afresh drop ckpt="
        )
    require_writable(cfg.paths.checkpoint_dir, "paths.checkpoint_dir")  # before the data and the fit
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data.module)
    module = build_module(cfg, datamodule)
    if "model_checkpoint" not in (cfg.callbacks or {}):
        raise AdvPurifyError(
            "callbacks.model_checkpoint is missing: src.train publishes the best checkpoint it keeps"
        )
    if cfg.callbacks.model_checkpoint.get("save_last"):
        raise AdvPurifyError(
            f"callbacks.model_checkpoint.save_last={cfg.callbacks.model_checkpoint.save_last}: src.train "
            "writes the run's last.ckpt itself after every epoch; set it to false"
        )
    dest = stable_path(
        cfg.paths.checkpoint_dir, datamodule.name, module.hparams.name, datamodule.input_shape, cfg.seed
    )
    require_same_settings(dest, module, recipe(cfg))
    stamp = training_fingerprint(cfg, datamodule.name, datamodule.input_shape)
    folder = run_dir(cfg, datamodule.name, module.hparams.name)
    with alone(folder, f"this training ({module.hparams.name})"):
        if cfg.task == "retrain":
            purify_training_data(cfg, datamodule)
        return fit_and_publish(cfg, module, datamodule, folder, dest, stamp, deadline)


def built_callback(key: str, node: DictConfig, monitor: str, mode: str, folder: Path) -> pl.Callback:
    """A callback of `callbacks=`: the checkpoint keeps its epochs in the run's folder and watches
    the module's own metric, as does any callback whose `monitor` the config leaves null."""
    if key == "model_checkpoint":
        return build(node, monitor=monitor, mode=mode, dirpath=str(folder))
    if "monitor" in node and node.monitor is None:
        return build(node, monitor=monitor, mode=mode)
    return build(node)


def fit_and_publish(
    cfg: DictConfig,
    module: pl.LightningModule,
    datamodule: ImageDataModule,
    folder: Path,
    dest: Path,
    stamp: str,
    deadline: float | None,
) -> dict[str, float | str]:
    """The fit itself, its test on the best epoch, and the publication."""
    monitor, mode = module.checkpoint_monitor
    ckpt_path = resume_from(cfg, folder)
    callbacks = [built_callback(key, node, monitor, mode, folder) for key, node in cfg.callbacks.items()]
    stop = StopAtDeadline(deadline)
    callbacks += [StopOnNonFinite(), stop, LatestCheckpoint(str(folder))]
    loggers = build_loggers(cfg)
    devices = trainer_devices(cfg.trainer.accelerator, cfg.trainer.devices)
    trainer: pl.Trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers or False, devices=devices)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    if stop.stopped:
        close_loggers(loggers)
        raise OutOfTime(
            f"out of time after epoch {trainer.current_epoch} of {trainer.max_epochs}: "
            f"resume=true goes on from {folder / 'last.ckpt'}"
        )
    best = trainer.checkpoint_callback.best_model_path
    if not best:
        raise AdvPurifyError(f"training kept no checkpoint (no {monitor} was logged): nothing was published")
    (test,) = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    StopOnNonFinite.check(trainer, test)
    publish(best, dest, stamp, recipe(cfg))
    shutil.rmtree(folder)
    close_loggers(loggers)
    metrics = {
        monitor: float(trainer.checkpoint_callback.best_model_score),
        **test,
        "epochs": trainer.current_epoch,
        "checkpoint": str(dest),
    }
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

    with user_errors():
        require_readable_conf()
    importable_main()
