"""`python -m src.export defense=<name> data=<data> [classifier=<name>]`: a trained purifier, taken
out of this repository.

Into `export.dir` (zoo/<data>/<defense>/, the layout `src.zoo` lists and `load_defense(zoo=)`
reads) it writes:

- `purifier.pt`: TorchScript of `purify` (pixels in [0, 1] in and out), which `torch.jit.load`
  runs with no code of this repository;
- `defended.pt`: TorchScript of purify-then-classify with `classifier=` (unless
  `export.defended=false`);
- `<defense>.ckpt`: the checkpoint itself, for this repository's API and attacks;
- `card.json`, `card.md`: the model card (src/evaluation/cards.py, src/reporting/cards.py).

Every traced stage (the purifier; the classifier, on the traced purifier's output) must reproduce
the PyTorch model on real test images, at two batch sizes, within `export.atol`, or nothing is
written. A folder that holds another checkpoint of the
same name is never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn

from src.defenses.base import TrainedPurifier, defense_class
from src.evaluation.cards import build_card
from src.evaluation.models import build_defense, load_classifier
from src.evaluation.settings import validate
from src.reporting.cards import digests, write_card
from src.reporting.rows import content_digest, require_writable
from src.runtime.checkpoints import place, stable_path
from src.runtime.configs import CONF_DIR, require_readable_conf
from src.runtime.console import console, print_config, user_errors
from src.runtime.errors import AdvPurifyError, build


class Chain(nn.Module):
    """Purify, then classify, from the two traced files (scripted, so it stays one file)."""

    def __init__(self, purifier: torch.jit.ScriptModule, classifier: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.purifier, self.classifier = purifier, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.purifier(x))


class Purify(nn.Module):
    """A defense without weights of its own (no LightningModule) as a module whose forward purifies."""

    def __init__(self, defense: nn.Module) -> None:
        super().__init__()
        self.defense = defense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.defense.purify(x)


def traced(module: nn.Module, x: torch.Tensor, label: str) -> torch.jit.ScriptModule:
    """The module's forward traced on x: by Lightning for its modules (it keeps tracing off its
    trainer), by torch for any other (a weightless defense's `Purify`)."""
    try:
        if isinstance(module, pl.LightningModule):
            return module.to_torchscript(method="trace", example_inputs=x, check_trace=False)
        return torch.jit.trace(module, x, check_trace=False)
    except Exception as err:  # tracing reports unsupported code by many exception types
        reason = str(err).splitlines()[0]
        raise AdvPurifyError(f"{label} cannot be traced to TorchScript: {reason}") from err


@torch.no_grad()
def checked_script(
    script: torch.jit.ScriptModule, reference: nn.Module, x: torch.Tensor, atol: float, label: str
) -> torch.jit.ScriptModule:
    """The script, once it reproduces the reference within atol on x and on a smaller batch (a
    trace that froze the batch size fails there)."""
    batches = (x, x[: max(1, len(x) // 3)])
    gap = torch.stack([(script(b) - reference(b)).abs().max() for b in batches]).max().item()  # NaN stays NaN
    if not gap <= atol:
        raise AdvPurifyError(
            f"exported {label} differs from PyTorch by {gap:.3g} > export.atol={atol}: it cannot be "
            "exported by tracing"
        )
    console.print(f"{label}: TorchScript reproduces PyTorch within {gap:.2g} on {len(x)} test images")
    return script


def claim(folder: Path, checkpoint: Path) -> None:
    """Refuse a folder that already holds another checkpoint under this name."""
    held = folder / checkpoint.name
    if held.exists() and content_digest(held) != content_digest(checkpoint):
        raise AdvPurifyError(
            f"{held} is another {checkpoint.stem} checkpoint: move that folder away or set export.dir"
        )


def save_script(script: torch.jit.ScriptModule, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    torch.jit.save(script, str(tmp))
    os.replace(tmp, dest)


def export(cfg: DictConfig) -> Path:
    validate(cfg)
    cls = defense_class(cfg.defense._target_)
    if cls.export_refusal:
        raise AdvPurifyError(f"defense={cfg.defense.name} cannot be exported: {cls.export_refusal}")
    datamodule = build(cfg.data.module)
    data, shape, ckpt_dir = datamodule.name, datamodule.input_shape, cfg.paths.checkpoint_dir
    checkpoint = None  # a weightless defense exports its TorchScript and card alone
    if issubclass(cls, TrainedPurifier):
        checkpoint = Path(cfg.defense_ckpt or stable_path(ckpt_dir, data, cfg.defense.name, shape))
    defense = build_defense(cfg.defense, data, checkpoint, ckpt_dir, shape)
    folder = Path(cfg.export.dir)
    require_writable(folder, "export.dir")  # before the tracing, not after it
    if checkpoint is not None:
        claim(folder, checkpoint)
    x, _ = datamodule.test_tensors(cfg.export.n)
    label, atol = f"defense={cfg.defense.name}", cfg.export.atol
    purifying = defense if isinstance(defense, pl.LightningModule) else Purify(defense).eval()
    purifier = checked_script(traced(purifying, x, label), purifying, x, atol, label)
    scripts = {"purifier.pt": purifier}
    if cfg.export.defended:
        classifier = load_classifier(data, cfg.classifier.name, cfg.ckpt, ckpt_dir, shape)
        # Each stage is checked on its own input: the classifier's logits would magnify the
        # purifier's float rounding (within atol) by its input gradient, far past atol.
        label = f"classifier={cfg.classifier.name}"
        with torch.no_grad():
            purified = purifier(x)
        classifying = checked_script(traced(classifier, purified, label), classifier, purified, atol, label)
        scripts["defended.pt"] = torch.jit.script(Chain(purifier, classifying))
    files = [*scripts, *([checkpoint.name] if checkpoint is not None else [])]
    card = build_card(cfg, defense.gradient, checkpoint, shape, files)  # before any file is written
    folder.mkdir(parents=True, exist_ok=True)
    for name, script in scripts.items():
        save_script(script, folder / name)
    if "defended.pt" not in scripts:  # never leave a chain of an earlier export beside this card
        (folder / "defended.pt").unlink(missing_ok=True)
    if checkpoint is not None:
        place(checkpoint, folder / checkpoint.name)
    card["sha256"] = digests(folder, files)
    write_card(card, folder)
    console.print(f"exported defense={cfg.defense.name} to {folder}: {', '.join(files)}, card.json, card.md")
    return folder


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def main(cfg: DictConfig) -> None:
    print_config(cfg)
    with user_errors():
        export(cfg)


if __name__ == "__main__":
    with user_errors():
        require_readable_conf()
    main()
