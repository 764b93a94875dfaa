"""The project's results tables, `results/results.csv` first, appended to atomically.

Each append takes an exclusive lock (parallel sweep jobs share the file), writes the whole
table to a temporary file beside it, fsyncs and renames it over the old one. A crash at any
point leaves either the old table or the new one, never a torn row.
"""

from __future__ import annotations

import csv
import fcntl
import os
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

KEY = ("data", "defense", "classifier", "attack", "threat", "eps")
COLUMNS = (
    *KEY,
    "n",
    "clean_acc",
    "purified_clean_acc",
    "clean_recon_l1_255",  # Table 4.1: mean per-image sum |x - X_C| on the 0-255 scale, no attack
    "adv_acc",
    "adv_recon_l1_255",  # the same between clean x and the purified adversarial input
    "adv_recon_l2",  # mean ||x - purify(x_adv)||_2 on [0, 1] pixels (SPEC 4: distance vs eps)
    "l2_mean",
    "linf_max",
    "seconds",
    "seed",
    "commit",
)
# Long-format analysis tables (e.g. the VQ analysis): one measured value per row.
ANALYSIS_COLUMNS = (*KEY, "n", "metric", "depth", "value", "seed", "commit")
VOTE_ANALYSIS_COLUMNS = (*KEY, "n", "metric", "voters", "value", "seed", "commit")


def read_rows(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_rows(
    path: str | Path, rows: Iterable[dict[str, Any]], required: tuple[str, ...] = COLUMNS
) -> None:
    """Add rows that have every `required` column; further columns are kept, in first-seen order."""
    path = Path(path)
    rows = list(rows)
    for row in rows:
        missing = [c for c in required if c not in row]
        if missing:
            raise ValueError(f"results row lacks columns {missing}")
    with _locked(path):
        table = read_rows(path) + rows
        columns = list(required)
        for row in table:
            columns += [c for c in row if c not in columns]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(table)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
