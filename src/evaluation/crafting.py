"""Adversarial images per eps (eval's second step): every attack of the grid built up front,
each model's share of a crafting attacked on that model or found in a shared store."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import torch
from omegaconf import DictConfig, OmegaConf

from src.attacks import within_budget
from src.attacks.base import Attack, attack_class
from src.evaluation.crafted import FolderStore, Store, crafted_part
from src.evaluation.threats import Parts
from src.reporting.rows import (
    cell_seed,
)
from src.runtime.console import image_progress
from src.runtime.errors import build


class Crafter:
    """Adversarial images per eps. Every attack of the grid is built up front, so a bad setting
    stops before any image is attacked; a minimal-norm attack is built and crafted once, and
    each budget keeps the examples within its ball.

    Under an oblivious threat (`classifier`, `transfer`, `paper`) the images do not depend on
    the defense, so their seeds leave it out, and the parts of each crafting can be kept in a
    `store` the next runs share (the next defense's cell; see `src.evaluation.crafted`); a row reports the
    seconds of the crafting that made its images. With `part_size`, each model's share is
    crafted in parts of that many images; when parts are kept on disk, none starts after
    `deadline` (stopping there loses nothing)."""

    def __init__(
        self,
        attack: DictConfig,
        eps_grid: list[float],
        oblivious: bool,
        store: Store | FolderStore | None = None,
        part_size: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.minimal = attack_class(attack._target_).minimal_norm is not None
        if self.minimal:
            self.attacks = {None: build(attack)}
        else:
            self.attacks = {eps: build(attack, eps=eps) for eps in eps_grid if eps > 0}
        self.recipe = json.dumps(OmegaConf.to_container(attack, resolve=True), sort_keys=True, default=str)
        self.oblivious = oblivious
        self.store = Store() if store is None else store
        self.part_size = part_size
        self.deadline = deadline if isinstance(self.store, FolderStore) else None

    def __call__(
        self, parts: Parts, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int
    ) -> tuple[torch.Tensor, float]:
        """x_adv at eps and the attack's seconds (a minimal-norm row reports its one crafting).

        The attack's random draws (PGD's start, EOT) come from `seed` and the budget alone."""
        if eps == 0:
            return x, 0.0
        budget = None if self.minimal else eps
        attack = self.attacks[budget]
        torch.manual_seed(cell_seed(seed, eps) if budget is not None else cell_seed(seed, "minimal-norm"))
        label = f"{attack.name} eps {eps:g}" if budget is not None else f"{attack.name} (once for every eps)"
        with image_progress(label, len(x)) as done:
            x_adv, seconds = craft(attack, parts, x, y, done, self, f"{self.recipe} at {budget}")
        if self.minimal:
            x_adv = within_budget(x_adv, x, eps, self.attacks[None].norm)
        return x_adv, seconds


def craft(
    attack: Attack,
    parts: Parts,
    x: torch.Tensor,
    y: torch.Tensor,
    done: Callable[[int], None],
    crafter: Crafter,
    recipe: str,
) -> tuple[torch.Tensor, float]:
    """Each part's images attacked on that part's model (the threat model's split, cut into
    `crafter.part_size` images), or found in the crafter's store, and the seconds their crafting
    took."""
    x_adv, seconds = x.clone(), 0.0
    for model, index in parts:
        index = index.to(x.device)
        for chunk in index.split(crafter.part_size) if crafter.part_size else [index]:
            part, fresh = crafted_part(
                crafter.store, recipe, partial(attack, done=done), model, x[chunk], y[chunk], crafter.deadline
            )
            if not fresh:
                done(len(chunk))
            x_adv[chunk] = part.images
            seconds += part.seconds
    return x_adv, seconds
