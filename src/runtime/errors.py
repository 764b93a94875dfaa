"""The one exception type entry points turn into a clean message instead of a traceback."""

from __future__ import annotations

import re
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


UNKNOWN_SETTING = re.compile(r"unexpected keyword argument '(\w+)'")


def build(config: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, with a bad setting reported as the target's own one line, and
    a setting the target does not take (`+trainer.ckpt_path=...`) named with its key."""
    from hydra.utils import instantiate

    try:
        return instantiate(config, **kwargs)
    except Exception as err:
        cause = user_error_in(err)
        if cause is not None and cause is not err:
            raise cause from None
        unknown = (
            UNKNOWN_SETTING.search(str(err.__cause__ or err))
            if isinstance(err.__cause__, TypeError)
            else None
        )
        if unknown is None:
            raise
        found = re.search(r"full_key: ([\w.]+)", str(err))
        key = f"{found.group(1)}.{unknown.group(1)}" if found else unknown.group(1)
        target = getattr(config, "get", lambda *_: None)("_target_") or "its target"
        raise AdvPurifyError(f"{key} is not a setting of {target}: remove it from the command line") from None
