"""Scores of one cell (eval's third step): clean and adversarial accuracy through the defended
model, reconstruction distances, and a defense's own decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from src.defenses.base import (
    DefendedClassifier,
    Defense,
)
from src.evaluation.crafting import Crafter
from src.evaluation.threats import Parts
from src.reporting.rows import (
    COLUMNS,
    KEY,
    cell_seed,
)


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = sum(
        (model(xb).argmax(1) == yb).sum().item()
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
    )
    return correct / len(y)


@torch.inference_mode()
def purified_scores(
    model: DefendedClassifier, x_in: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[float, float, float]:
    """Accuracy on purify(x_in), and how far purify(x_in) lies from the clean x, in one pass.

    Returns (accuracy, mean per-image sum |x - X_C| on the 0-255 scale as in Table 4.1,
    mean per-image ||x - X_C||_2 on [0, 1] pixels).
    """
    correct, l1, l2 = 0, 0.0, 0.0
    for xb_in, xb, yb in zip(x_in.split(batch_size), x.split(batch_size), y.split(batch_size), strict=True):
        x_hat = model.defense.purify(xb_in)
        correct += (model.classifier(x_hat).argmax(1) == yb).sum().item()
        diff = (x_hat - xb).flatten(1)
        l1 += diff.abs().sum(1).sum().item()
        l2 += diff.norm(dim=1).sum().item()
    n = len(y)
    return correct / n, 255 * l1 / n, l2 / n


@torch.inference_mode()
def decision_accuracies(
    defense: Defense, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, suffix: str
) -> dict[str, float]:
    """`<decision>_<suffix>` for each decision of the defense's own (`Defense.decide`); for an
    (N, M) decision of M members, their mean accuracy."""
    correct: dict[str, float] = {}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        for decision, predicted in defense.decide(classifier, xb).items():
            hits = (predicted == yb.view(-1, *[1] * (predicted.dim() - 1))).float()
            per_image = hits.flatten(1).mean(1) if hits.dim() > 1 else hits
            correct[decision] = correct.get(decision, 0.0) + per_image.sum().item()
    return {f"{decision}_{suffix}": hits / len(y) for decision, hits in correct.items()}


@dataclass
class Loaded:
    """The models and images one run attacks."""

    classifier: nn.Module
    defense: Defense
    model: DefendedClassifier
    x: torch.Tensor
    y: torch.Tensor
    parts: Parts


def clean_scores(loaded: Loaded, batch: int, seed: int, data: str, name: str) -> dict[str, float]:
    """The classifier's clean accuracy, and the defended model's on purified clean images."""
    torch.manual_seed(cell_seed(seed, data, name, "clean"))  # a random purifier's draws
    purified_acc, clean_l1, _ = purified_scores(loaded.model, loaded.x, loaded.x, loaded.y, batch)
    return {
        "clean_acc": accuracy(loaded.classifier, loaded.x, loaded.y, batch),
        "purified_clean_acc": purified_acc,
        "clean_recon_l1_255": clean_l1,
    }


def crafted_on(loaded: Loaded, scored: str) -> str:
    """What an oblivious crafting's images depend on in place of the scored classifier: the
    models its parts attack, the scored one by its row's name. Under `transfer` (every image
    crafted on surrogates) a retrained target then draws the random starts the original does and
    reuses its crafting; a `classifier`-threat cell keeps the seed it always had."""

    def name(model: nn.Module) -> str:
        if model is loaded.classifier:
            return scored
        return str((getattr(model, "hparams", None) or {}).get("name") or type(model).__name__)

    return "+".join(dict.fromkeys(name(model) for model, _ in loaded.parts))


def measure(
    loaded: Loaded, crafter: Crafter, eps: float, base: dict[str, Any], batch: int, iterations: int
) -> tuple[dict[str, Any], torch.Tensor]:
    """One (attack, eps) cell: its results row and the adversarial images."""
    x, y = loaded.x, loaded.y
    ignored = ("eps", "defense") if crafter.oblivious else ("eps",)  # what the images do not depend on
    key = {k: base[k] for k in KEY if k not in ignored}
    if crafter.oblivious:
        key["classifier"] = crafted_on(loaded, base["classifier"])
    seed = cell_seed(base["seed"], *key.values())
    x_adv, seconds = crafter(loaded.parts, x, y, eps, seed)
    torch.manual_seed(cell_seed(seed, eps, "scores"))
    delta = (x_adv - x).flatten(1)
    adv_acc, adv_l1, adv_l2 = purified_scores(loaded.model, x_adv, x, y, batch)
    row = {
        **base,
        "eps": eps,
        "adv_acc": adv_acc,
        "adv_recon_l1_255": adv_l1,
        "adv_recon_l2": adv_l2,
        "l2_mean": delta.norm(dim=1).mean().item(),
        "linf_max": delta.abs().max().item(),
        "iterations": iterations,
        "seconds": round(seconds, 3),
    }
    row = {column: row[column] for column in COLUMNS}
    clean_decisions = decision_accuracies(loaded.defense, loaded.classifier, x, y, batch, "clean_acc")
    adv_decisions = decision_accuracies(loaded.defense, loaded.classifier, x_adv, y, batch, "acc")
    return row | clean_decisions | adv_decisions, x_adv
