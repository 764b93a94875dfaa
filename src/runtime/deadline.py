"""A run's deadline (src.reproduce's `budget_minutes`): the run stops at its next boundary
where stopping loses nothing.

A GPU window ends at a fixed time, and a run still going then is killed mid-step. Checking the
budget between runs only is not enough: on a 2-core CPU one grid run through Defense-GAN takes
hours. So an eval starts no eps after the deadline (its finished cells are in the results
table) nor, crafting in parts (`eval.part_size`), a part (the finished ones are on disk); a
training stops after the epoch in which the deadline passed (its `last.ckpt` written; the next
run continues it with resume=true). Both then raise OutOfTime.
"""

from __future__ import annotations

import time


class OutOfTime(Exception):
    """A run stopped at its deadline: what it finished is kept, and the next run goes on."""


def past(deadline: float | None) -> bool:
    """Whether a deadline (a `time.time()`; None for none) has come."""
    return deadline is not None and time.time() >= deadline
