"""The one exception type entry points turn into a clean message instead of a traceback."""

from __future__ import annotations

from typing import Any


class AdvPurifyError(Exception):
    """A bad input the user can fix: the message says what to change."""


def user_error_in(err: BaseException) -> AdvPurifyError | None:
    """The AdvPurifyError behind `err`, if any: Hydra wraps what a config's target raises."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, AdvPurifyError):
            return seen
        seen = seen.__cause__
    return None


def build(config: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, with a bad setting reported as the target's own one line."""
    from hydra.utils import instantiate

    try:
        return instantiate(config, **kwargs)
    except Exception as err:
        cause = user_error_in(err)
        if cause is None or cause is err:
            raise
        raise cause from None
