"""File locks across processes: a shared table written by parallel sweep jobs, a grid cell or a
training that two processes must not compute at once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from src.runtime.errors import AdvPurifyError


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (held in `<path>.lock`) for the block, waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def alone(path: Path, what: str) -> Iterator[None]:
    """The lock of `locked`, or at once one line saying `what` already runs elsewhere."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AdvPurifyError(
                f"{what} is already running in another process (lock {lock.name}): wait for it to "
                "finish; run the command again then, and it finds the result done"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
