"""PGD (Madry et al. 2018): BIM from a point drawn uniformly in the eps ball."""

from __future__ import annotations

from src.attacks.bim import BIM
from src.runtime.errors import AdvPurifyError
from src.runtime.rules import whole_at_least


class PGD(BIM):
    rules = {"num_random_init": whole_at_least(0)}

    def __init__(self, num_random_init: int = 1, **bim) -> None:
        super().__init__(**bim)
        if num_random_init not in (0, 1) and self.backend == "native":
            raise AdvPurifyError(
                f"attack.num_random_init={num_random_init}: native PGD takes 0 or 1 random start"
            )
        if num_random_init < 0:
            raise AdvPurifyError(f"attack.num_random_init={num_random_init}: it must be >= 0")
        self.random_starts = num_random_init
