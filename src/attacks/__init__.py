"""Attacks: one class per backend, `attack(model, x, y) -> x_adv` with the budget set at construction.

`attack.backend` picks it: `art` (adversarial-robustness-toolbox, the reference) or `native`
(batched PyTorch, src/attacks/native.py; FGSM, BIM and PGD so far).
"""

from __future__ import annotations

from typing import Any

from src.errors import AdvPurifyError

BACKENDS = ("art", "native")


def make_attack(backend: str = "art", **settings: Any):
    if backend == "art":
        from src.attacks.art import ArtAttack

        return ArtAttack(**settings)
    if backend == "native":
        from src.attacks.native import NativeAttack

        return NativeAttack(**settings)
    raise AdvPurifyError(f"attack.backend={backend} is unknown: choose one of {list(BACKENDS)}")
