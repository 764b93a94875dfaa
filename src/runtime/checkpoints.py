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
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object

from src.runtime.configs import options
from src.runtime.errors import AdvPurifyError
from src.runtime.provenance import git_commit


def stable_path(
    checkpoint_dir: str | Path, data: str, name: str, input_shape: Sequence[int], seed: int = 0
) -> Path:
    """`checkpoints/<data>/<size>px/<name>.ckpt`: where `src.train` publishes and `src.eval`
    looks. The image size is part of the place, so a model trained on padded images never
    replaces the unpadded one of the same name; so is a training seed other than 0
    (`<name>-seed<k>.ckpt`), so that the seeds of one model stand side by side."""
    suffix = f"-seed{seed}" if seed else ""
    return Path(checkpoint_dir) / data / f"{input_shape[-1]}px" / f"{name}{suffix}.ckpt"


def find(checkpoint_dir: str | Path, data: str, name: str, input_shape: Sequence[int] | None) -> Path:
    """`stable_path`, or, with no input shape given (the Python API), the one size published."""
    known = options("data")
    if data not in known:
        raise AdvPurifyError(f"unknown data {data!r}: choose one of {known}")
    if input_shape is not None:
        return stable_path(checkpoint_dir, data, name, input_shape)
    found = sorted((Path(checkpoint_dir) / data).glob(f"*px/{name}.ckpt"))
    if len(found) > 1:
        sizes = [p.parent.name for p in found]
        raise AdvPurifyError(
            f"{name} is published for several image sizes ({', '.join(sizes)}) under "
            f"{Path(checkpoint_dir) / data}: pass input_shape=(channels, size, size) or the ckpt path"
        )
    return found[0] if found else Path(checkpoint_dir) / data / "<size>px" / f"{name}.ckpt"


def retrained_name(classifier: str, purifier: str) -> str:
    """A classifier retrained on a purifier's outputs (`src.train task=retrain`): its own name."""
    return f"{classifier}+{purifier}"


def train_hint(data: str, input_shape: Sequence[int] | None, kind: str, name: str) -> str:
    """The command that publishes the missing model `name`, as an error's fix."""
    size = f" data.image_size={input_shape[-1]}" if input_shape is not None else ""
    if kind == "classifier" and "+" in name:  # a retrained target or voter: <classifier>+<purifier>
        base, purifier = name.split("+", 1)
        what = f"task=retrain defense={purifier} classifier={base}"
    else:
        what = f"{kind}={name}"
    return f"train it with `python -m src.train data={data}{size} {what}`"


def publish(best: str | Path, dest: Path, training: str, recipe: dict[str, Any] | None = None) -> None:
    """Write the best checkpoint to its stable place atomically (a reader never sees half a
    file), stamped with the fingerprint of how it was trained (`src.train.training_fingerprint`),
    by which a rerun of the same training knows it is done, and with its `recipe` (epochs, data
    slice, seed: `src.train.recipe`), by which a different training is refused before it could
    replace it. `best` may be `dest` itself."""
    ckpt = read(Path(best), "model")
    ckpt["advpurify"]["training"] = training
    if recipe is not None:
        ckpt["advpurify"]["recipe"] = recipe
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, dest)


def place(source: str | Path, dest: Path) -> None:
    """Copy a checkpoint byte for byte, atomically (its sha256 stays the one a card records)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


def training_stamp(path: Path) -> str | None:
    """The training fingerprint `publish` stamped on a checkpoint (None: none, or no file)."""
    if not path.exists():
        return None
    return read(path, "model")["advpurify"].get("training")


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
        "commit": git_commit(),
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
            "commit": git_commit(),
        }


# packages whose classes a checkpoint's hyperparameters may ask to build (`_target_`): our
# architectures and attacks; plus torch's optimizers and schedulers, listed by full path
BUILDABLE = ("src.classifiers", "src.attacks")
OURS = ("src.classifiers.", "src.defenses.")  # modules a checkpoint's class may be imported from
KINDS = {  # the class every checkpoint of a kind must be, or subclass
    "classifier": "src.classifiers.module.ClassifierModule",
    "defense": "src.defenses.base.TrainedPurifier",
    "tables": "src.defenses.components.voting.BayesianVote",
}


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def allowed_class(name: str, base: type, path: Path) -> type:
    """The class a checkpoint names, if it is `base` or a subclass of it, defined in this project
    or already imported by the run's own config; nothing else is imported or called."""

    def known() -> dict[str, type]:
        found, todo = {}, [base]
        while todo:
            cls = todo.pop()
            found[qualified(cls)] = cls
            todo += cls.__subclasses__()
        return found

    if name not in known() and name.startswith(OURS):
        with suppress(ImportError):
            importlib.import_module(name.rpartition(".")[0])
    cls = known().get(name)
    if cls is None:
        raise AdvPurifyError(
            f"{path} names class {name!r}, which is not a {base.__name__} of this project: "
            "refusing to build it"
        )
    return cls


def torch_buildables() -> dict[str, type]:
    """torch's optimizers and schedulers by the full paths a config names them with
    (`torch.optim.Adam`, `torch.optim.lr_scheduler.CosineAnnealingLR`)."""
    from torch.optim import Optimizer, lr_scheduler

    found = {}
    for prefix, space, base in (
        ("torch.optim", vars(torch.optim), Optimizer),
        ("torch.optim.lr_scheduler", vars(lr_scheduler), lr_scheduler.LRScheduler),
    ):
        for attr, obj in space.items():
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
                found[f"{prefix}.{attr}"] = obj
    return found


def project_class(target: str) -> type | None:
    """The class `target` names if it is defined, under exactly that name, in one of our
    `BUILDABLE` packages. Only our own module is imported, and the name is looked up in it
    once: no attribute is walked, so `src.attacks.base.torch....` names nothing."""
    module_name, _, attr = target.rpartition(".")
    if not any(module_name == pkg or module_name.startswith(pkg + ".") for pkg in BUILDABLE):
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    obj = vars(module).get(attr)
    if isinstance(obj, type) and obj.__module__ == module_name and obj.__qualname__ == attr:
        return obj
    return None


def check_targets(node: Any, path: Path) -> None:
    """Refuse hyperparameters that would build anything but a class this project defines in
    `BUILDABLE` or one of torch's optimizers and schedulers, each named by its full path.

    A checkpoint is data from anywhere: resolving its `_target_` by walking attributes (as
    Hydra does) reaches any module an allowed one imports, and so files and processes."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None:
            allowed = isinstance(target, str) and (
                target in torch_buildables() or project_class(target) is not None
            )
            if not allowed:
                raise AdvPurifyError(
                    f"{path} asks to build {target!r}, which is neither a class of "
                    f"{', '.join(BUILDABLE)} nor a torch optimizer or scheduler: refusing to load it"
                )
        for value in node.values():
            check_targets(value, path)
    elif isinstance(node, (list, tuple)):
        for value in node:
            check_targets(value, path)


def read(path: Path, kind: str, hint: str = "") -> dict[str, Any]:
    """A checkpoint's contents, tensors and plain data only, once it is known to be ours."""
    key = "defense_ckpt" if kind == "defense" else "ckpt"
    if not path.exists():
        raise AdvPurifyError(
            f"no {kind} checkpoint at {path}: {hint or 'train it first'}, or pass its path with {key}="
        )
    if path.is_dir():
        raise AdvPurifyError(f"{path} is a folder: pass the checkpoint file itself with {key}=<file>.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise AdvPurifyError(
            f"{path} is damaged or holds more than tensors and plain data ({type(err).__name__}): "
            "refusing to unpickle it; use one written by src.train"
        ) from err
    meta = ckpt.get("advpurify") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or not {"class", "kind", "name", "data", "input_shape"} <= set(meta):
        raise AdvPurifyError(
            f"{path} was not written by advpurify's src.train: it lacks the 'advpurify' entry"
        )
    return ckpt


def load(
    path: str | Path,
    kind: str,
    data: str,
    input_shape: tuple[int, ...] | None = None,
    hint: str = "",
    name: str | None = None,
    base: type | None = None,
) -> Any:
    """Rebuild a trained module from its checkpoint, frozen and in eval mode, on the CPU.

    Never runs code from the file: tensors and plain data only (`weights_only`), a class that
    is `base` (by default the kind's own, `KINDS`) or one of its subclasses, and
    hyperparameters that build only allowed classes. Given `name`, the checkpoint must hold
    the model of that name.
    """
    path = Path(path)
    ckpt = read(path, kind, hint)
    meta = ckpt["advpurify"]
    if meta["kind"] not in KINDS or meta["kind"] != kind:
        raise AdvPurifyError(f"{path} holds a {meta['kind']}, not a {kind}")
    if meta["data"] != data:
        raise AdvPurifyError(f"{path} was trained on data={meta['data']}, but this run uses data={data}")
    if input_shape is not None and tuple(meta["input_shape"]) != tuple(input_shape):
        raise AdvPurifyError(
            f"{path} expects inputs of shape {tuple(meta['input_shape'])}, but the data gives "
            f"{tuple(input_shape)}: set data.image_size={meta['input_shape'][-1]}"
        )
    if name is not None and meta["name"] != name:
        raise AdvPurifyError(f"{path} holds {kind} {meta['name']}, not {name}: pass the checkpoint of {name}")
    cls = allowed_class(meta["class"], base or get_object(KINDS[kind]), path)
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise AdvPurifyError(f"{path} lacks its hyper_parameters or state_dict: retrain it")
    check_targets(hparams, path)
    broken = [
        k
        for k, v in ckpt["state_dict"].items()
        if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if broken:
        raise AdvPurifyError(
            f"{path} holds NaN or inf weights ({', '.join(broken[:3])}): it would score garbage; retrain it"
        )
    try:
        module = cls(**hparams)
        module.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise AdvPurifyError(f"{path} does not fit {meta['class']} ({reason[:160]}): retrain it") from err
    return module.eval().requires_grad_(False)
