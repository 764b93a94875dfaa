"""Which code produced a result or a model: the commit recorded in results rows, checkpoints
and model cards."""

from __future__ import annotations

import functools
import subprocess


@functools.cache
def git_commit() -> str:
    """The code version (`-dirty` when the tree has uncommitted changes), or `unknown` outside git.

    Read once per process, when this module is loaded with the rest of the code (below): a run
    that lasts hours while commits land must name the code it runs, not whatever HEAD is when
    each row is written."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


git_commit()
