"""Attacks: one class per backend, `attack(model, x, y) -> x_adv` with the budget set at construction.

`attack.backend` picks it: `art` (adversarial-robustness-toolbox, the reference) or `native`
(batched PyTorch, src/attacks/native.py; FGSM, BIM and PGD so far).
"""

from __future__ import annotations

from typing import Any

from src.errors import AdvPurifyError

BACKENDS = ("art", "native")


def parse_norm(norm: str | int | float) -> float:
    if str(norm) in ("inf", "linf"):
        return float("inf")
    if str(norm) in ("2", "l2", "2.0"):
        return 2.0
    raise AdvPurifyError(f"attack.norm={norm} is not supported: use inf or 2")


def require_budget(name: str, eps: float | None) -> float:
    """A norm-bounded attack's eps, which every backend needs > 0."""
    if eps is None or eps <= 0:
        raise AdvPurifyError(f"attack {name} needs eps > 0, got {eps}")
    return eps


def make_attack(backend: str = "art", **settings: Any):
    if backend == "art":
        from src.attacks.art import ArtAttack

        return ArtAttack(**settings)
    if backend == "native":
        from src.attacks.native import NativeAttack

        return NativeAttack(**settings)
    raise AdvPurifyError(f"attack.backend={backend} is unknown: choose one of {list(BACKENDS)}")
