"""The thin base every attack shares (STYLE: torchattacks' shape, one attack a file).

An attack is built from its config (`conf/attack/<name>.yaml`, whose `_target_` names the
class) with its budget and steps, and every setting is checked there, so a bad CW or PGD
setting stops before any image is attacked. Calling it, `attack(model, x, y) -> x_adv`, runs
in chunks of `batch_size` on the device of x, by one of two backends:

- `native`: the class's own `perturb`, batched PyTorch (the default);
- `art`: its ART counterpart (`art_attack`, the reference of SPEC 4) through the adapter in
  src/attacks/art.py, with the same keys.

A norm-bounded attack (FGSM, BIM, PGD, AutoAttack) takes `eps` > 0. A minimal-norm attack (CW,
DeepFool) takes none and declares the norm it minimises (`minimal_norm`): it is crafted once for
a whole eps grid, kept only where it fools the model, and `within_budget` then counts it per
eps in `attack.norm`, the grid's norm. That is usually the norm minimised, but need not be:
cleverhans' CW is L2-only, and the dissertation plots it on the L-inf grid of the other
attacks (`attack=cw_cleverhans` sets norm=inf: an L2 example counts where its L-inf size fits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from src.attacks import keep_fooling, parse_norm
from src.runtime.checkpoints import project_class
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import COUNT, ChecksSettings, Rule, one_of

BACKENDS = ("native", "art")
NORM = Rule(lambda v: str(v) in ("inf", "linf", "2", "l2", "2.0"), "inf or 2")


def positive(**settings: float) -> None:
    """Every named setting must be > 0."""
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise AdvPurifyError(f"attack.{key}={value!r}: it must be a number > 0")


def at_least_one(**counts: int) -> None:
    """Every named count must be a whole number >= 1."""
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AdvPurifyError(f"attack.{key}={value!r}: it must be a whole number >= 1")


def attack_class(target: str, ours_only: bool = False) -> type[Attack]:
    """The attack class a config names. `ours_only` for a config read from a checkpoint
    (a purifier's training attacks): it must name a class defined in src.attacks, found without
    walking attributes, so it reaches no other code to import or call."""
    if ours_only:
        cls = project_class(target) if isinstance(target, str) and target.startswith("src.attacks.") else None
        if cls is None:
            raise AdvPurifyError(
                f"attack _target_ {target!r} is not one of this project's attacks (src.attacks.*)"
            )
    else:
        from hydra.utils import get_class

        try:
            cls = get_class(target)
        except Exception as err:  # Hydra reports a name that is no class by several types
            raise AdvPurifyError(f"attack _target_ {target!r} names no class: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Attack)):
        raise AdvPurifyError(f"attack _target_ {target!r} is not an Attack (src/attacks/base.py)")
    return cls


class Attack(ChecksSettings):
    # the norm a minimal-norm attack minimises (math.inf or 2.0); None for a norm-bounded one
    minimal_norm: ClassVar[float | None] = None
    rules = {"batch_size": COUNT, "backend": one_of(*BACKENDS), "norm": NORM}

    def __init__(
        self,
        name: str,
        eps: float | torch.Tensor | None = None,
        norm: str | int | float = "inf",
        batch_size: int = 256,
        backend: str = "native",
    ) -> None:
        if backend not in BACKENDS:
            raise AdvPurifyError(f"attack.backend={backend} is unknown: choose one of {list(BACKENDS)}")
        at_least_one(batch_size=batch_size)
        self.name, self.norm, self.batch_size, self.backend = name, parse_norm(norm), batch_size, backend
        if self.minimal_norm is None:
            budget = torch.as_tensor(eps if eps is not None else math.nan, dtype=torch.float64)
            if not bool((budget > 0).all()):
                raise AdvPurifyError(f"attack {name} needs eps > 0, got {eps}")
        self.eps = eps

    @classmethod
    def iterations_of(cls, settings: Any) -> int:
        """Its iteration count under `settings` (the rows' `iterations`, which the checklist
        compares); 1 for a single-step attack."""
        return int(settings.get("max_iter", 1))

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The attack's algorithm on one chunk (native backend)."""
        raise NotImplementedError

    def art_attack(self, estimator: Any) -> Any:
        """The ART attack with the same settings (art backend)."""
        raise NotImplementedError

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        done: Callable[[int], None] = lambda images: None,
    ) -> torch.Tensor:
        """x_adv; `done(k)` is told after each chunk of k images (a progress bar's count)."""
        if self.backend == "art":
            from src.attacks.art import run_art

            x_adv = run_art(self, model, x, y)
            done(len(x))
        else:
            chunks = []
            for xb, yb in zip(x.split(self.batch_size), y.split(self.batch_size), strict=True):
                chunks.append(self.perturb(model, xb, yb))
                done(len(xb))
            x_adv = torch.cat(chunks)
        if self.minimal_norm is not None:
            x_adv = keep_fooling(model, x_adv, x, y, self.batch_size)
        return x_adv
