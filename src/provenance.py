"""Which code produced a result or a model: the commit recorded in results rows, checkpoints
and model cards."""

from __future__ import annotations

import subprocess


def git_commit() -> str:
    """The code version (`-dirty` when the tree has uncommitted changes), or `unknown` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")
