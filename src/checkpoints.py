"""Self-describing checkpoints at stable, named places.

Every module we train writes an `advpurify` entry (its class, kind, name, dataset, input
shape) into its Lightning checkpoint. Loading checks that entry against what the caller
expects, so a checkpoint for the wrong dataset or padding stops with a message instead of
a shape error deep inside a forward pass.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from src.errors import AdvPurifyError


def stable_path(checkpoint_dir: str | Path, data: str, name: str) -> Path:
    """`checkpoints/<data>/<name>.ckpt`: where `src.train` publishes and `src.eval` looks."""
    return Path(checkpoint_dir) / data / f"{name}.ckpt"


def retrained_name(classifier: str, purifier: str) -> str:
    """A classifier retrained on a purifier's outputs (`src.train task=retrain`): its own name."""
    return f"{classifier}+{purifier}"


def publish(best: str | Path, dest: Path) -> None:
    """Copy the best checkpoint to its stable place atomically (a reader never sees half a file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(best, tmp)
    os.replace(tmp, dest)


def save(
    module: torch.nn.Module,
    dest: Path,
    kind: str,
    hparams: dict[str, Any],
    data: str,
    input_shape: tuple[int, ...],
) -> None:
    """Write a module that `load` can rebuild (`cls(**hparams)` + its state), atomically.

    For what is computed rather than trained by Lightning, e.g. the Bayesian update's tables.
    """
    cls = type(module)
    meta = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "kind": kind,
        "name": hparams.get("name", cls.__name__),
        "data": data,
        "input_shape": list(input_shape),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save({"advpurify": meta, "hyper_parameters": hparams, "state_dict": module.state_dict()}, tmp)
    os.replace(tmp, dest)


class SelfDescribing:
    """Mixin for LightningModules whose hparams hold `name`, `data` and `input_shape`."""

    kind: str

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        cls = type(self)
        hp = self.hparams  # type: ignore[attr-defined]
        checkpoint["advpurify"] = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "kind": self.kind,
            "name": hp.name,
            "data": hp.data,
            "input_shape": list(hp.input_shape),
        }


def load(
    path: str | Path,
    kind: str,
    data: str,
    input_shape: tuple[int, ...] | None = None,
    hint: str = "",
    name: str | None = None,
) -> pl.LightningModule:
    """Rebuild a trained module from its checkpoint, frozen and in eval mode, on the CPU; given
    `name`, the checkpoint must hold the model of that name."""
    path = Path(path)
    if not path.exists():
        raise AdvPurifyError(
            f"no {kind} checkpoint at {path}: {hint or 'train it first'}, or pass its path with ckpt="
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise AdvPurifyError(
            f"{path} is not a readable checkpoint ({err}): retrain it or pass another"
        ) from err
    meta = ckpt.get("advpurify") if isinstance(ckpt, dict) else None
    if meta is None:
        raise AdvPurifyError(
            f"{path} was not written by advpurify's src.train: it lacks the 'advpurify' entry"
        )
    if meta["kind"] != kind:
        raise AdvPurifyError(f"{path} holds a {meta['kind']}, not a {kind}")
    if meta["data"] != data:
        raise AdvPurifyError(f"{path} was trained on data={meta['data']}, but this run uses data={data}")
    if input_shape is not None and tuple(meta["input_shape"]) != tuple(input_shape):
        raise AdvPurifyError(
            f"{path} expects inputs of shape {tuple(meta['input_shape'])}, but the data gives "
            f"{tuple(input_shape)}: set data.image_size={meta['input_shape'][-1]}"
        )
    if name is not None and meta["name"] != name:
        option = "classifier" if kind == "classifier" else "defense"
        raise AdvPurifyError(f"{path} holds {kind} {meta['name']}, not {name}: set {option}={meta['name']}")
    module_name, _, class_name = meta["class"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    module = cls(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    return module.eval().requires_grad_(False)
