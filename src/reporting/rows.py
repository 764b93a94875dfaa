"""The project's results tables, `results/results.csv` first, appended to atomically.

Each append takes an exclusive lock (parallel sweep jobs share the file), writes the whole
table to a temporary file beside it, fsyncs and renames it over the old one. A crash at any
point leaves either the old table or the new one, never a torn row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from src.runtime.errors import AdvPurifyError
from src.runtime.locks import locked

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
    "iterations",  # the attack's max_iter (1 for FGSM): the sanity check compares iteration counts
    "seconds",
    "seed",
    "commit",
    "fingerprint",  # what made the row: settings and checkpoint versions (see `fingerprint`)
    "models",  # the content of the checkpoints alone: the report keeps one per curve
)


def base_name(name: str) -> str:
    """An attack or threat's config name without its variant (`pgd[norm=2]` -> `pgd`)."""
    return name.partition("[")[0]


def without_setting(name: str, key: str) -> str:
    """An attack or threat's name with one setting of its variant left out
    (`pgd[max_iter=100,norm=2]` -> `pgd[norm=2]`): the rows that differ in that setting alone."""
    base, _, variant = name.partition("[")
    kept = [s for s in variant.removesuffix("]").split(",") if s and not s.startswith(f"{key}=")]
    return f"{base}[{','.join(kept)}]" if kept else base


NUMBERS = ("eps", "n", "seed", "iterations", "seconds", "value")  # beside every `*_acc` column


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """A results or analysis table, refused with the line to fix when it is not one src.eval
    could have written: a line cut short (a torn write), one with more fields than the header,
    a header repeated inside, a number that is not one, an accuracy outside [0, 1]."""
    path = Path(path)
    if not path.exists():
        return []
    if path.is_dir():
        raise AdvPurifyError(f"{path} is a folder, not a results table: point at a .csv file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    header = reader.fieldnames or []
    for line, row in enumerate(rows, start=2):
        problem = row_problem(row, header)
        if problem:
            raise AdvPurifyError(
                f"{path} line {line}: {problem}; remove or fix that line (src.eval recomputes a missing cell)"
            )
    return rows


def row_problem(row: dict[str, Any], header: list[str]) -> str | None:
    """What is wrong with one table row (None when nothing is)."""
    if None in row:
        return f"{len(header) + len(row[None])} fields under a header of {len(header)}"
    if any(value is None for value in row.values()):
        return "the line is cut short (a write that was interrupted?)"
    if header and all(row[c] == c for c in header):
        return "the header is repeated"
    for column, value in row.items():
        if value == "" or not (column in NUMBERS or column.endswith("_acc")):
            continue
        try:
            number = float(value)
        except ValueError:
            return f"{column}={value!r} is not a number"
        if not math.isfinite(number) and column != "value":  # an analysis may hold an undefined rate
            return f"{column}={value} is not finite"
        if column.endswith("_acc") and not 0 <= number <= 1:
            return f"{column}={value} is not an accuracy in [0, 1]"
    return None


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
    with locked(path):
        table = read_rows(path) + rows
        columns = list(required)
        for row in table:
            columns += [c for c in row if c not in columns]
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~current_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(table)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)  # mkstemp's 0600 would otherwise replace the table's own mode
            os.replace(tmp, path)
        except OSError as err:
            Path(tmp).unlink(missing_ok=True)
            raise AdvPurifyError(
                f"could not write {path} ({err.strerror}): the table as it was is kept; free space or "
                "fix the folder's permissions, then run the same command again"
            ) from err
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_layout(path: str | Path, layout: dict[str, Any]) -> None:
    """An analysis table's plotting layout beside it (`Analysis.layout`), for the report."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(layout, f, indent=1)
    os.replace(tmp, path)


def analysis_tables(results_dir: str | Path) -> dict[str, tuple[dict[str, Any], list[dict[str, str]]]]:
    """name -> (layout, rows) for every analysis table eval wrote into `results_dir`."""
    out = {}
    for layout in sorted(Path(results_dir).glob("*.layout.json")):
        name = layout.name.removesuffix(".layout.json")
        out[name] = json.loads(layout.read_text()), read_rows(layout.with_name(f"{name}.csv"))
    return out


def decision_names(row: dict[str, str]) -> list[str]:
    """A defense's own decisions in a results row (`<d>_clean_acc` and `<d>_acc`, e.g. vote)."""
    own = [c.removesuffix("_clean_acc") for c in row if c.endswith("_clean_acc")]
    return [d for d in own if row.get(f"{d}_acc") not in (None, "")]


_DIGESTS: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | Path) -> str:
    """sha256 of a file's bytes ("missing" for none), remembered per (path, size, mtime) so a
    sweep hashes each checkpoint once."""
    path = Path(path)
    if not path.exists():
        return "missing"
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


# settings that say where or how fast a run goes, not what it computes: a grid started on one
# machine (its data copied elsewhere, a GPU, more workers) is finished on another without redoing it
MACHINE_KEYS = frozenset(
    {
        "source_dir",
        "cache_dir",
        "num_workers",
        "eval_batch_size",
        "resident",
        "accelerator",
        "devices",
        "precision",
        "default_root_dir",
        "enable_progress_bar",
        "enable_model_summary",
        "log_every_n_steps",
    }
)


def portable(settings: Any) -> Any:
    """`settings` (plain data or a config node) without the keys that only say where a run went
    (MACHINE_KEYS), at any depth, as plain data. A config's machine keys are dropped before they
    are resolved, so one pointing at Hydra's run folder needs no Hydra run."""
    if isinstance(settings, (dict, DictConfig)):  # a config's values resolve only as they are read
        return {k: portable(settings[k]) for k in settings if k not in MACHINE_KEYS}
    if isinstance(settings, (list, ListConfig)):
        return [portable(v) for v in settings]
    return settings


def fingerprint(settings: dict[str, Any], files: Iterable[str | Path]) -> str:
    """A short hash of everything that decides a row's numbers but is not in KEY: the
    settings (attack, defense, threat, n, seed, ...) and the content of every checkpoint the
    row uses (a missing one counts too), so a retrained model or a changed attack is
    recomputed, not reused, and a copied or touched file is not. Where the run went (the
    machine, its data folder, its device) is left out (`portable`)."""
    stamps = sorted((Path(f).name, content_digest(f)) for f in files)
    blob = json.dumps({"settings": portable(settings), "files": stamps}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cell_seed(seed: int, *key: Any) -> int:
    """The RNG seed of one cell, from the run's seed and the cell's own key: a cell computed
    alone, after a kill or in another order, draws what it draws in the whole grid."""
    blob = json.dumps([seed, *key], default=str).encode()
    return int(hashlib.sha256(blob).hexdigest()[:15], 16)


PROBE = 1 << 20  # bytes written to check a folder: a full disk refuses them before any work


def require_writable(folder: str | Path, key: str) -> None:
    """Stop before any work if results cannot be written to `folder` (missing rights, a path
    under a file, a full disk)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as probe:
            probe.write(b"\0" * PROBE)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise AdvPurifyError(
            f"{key}={folder} is not writable ({err.strerror}): set {key}= to a folder you can write"
        ) from err


def require_writable_file(path: str | Path, key: str) -> None:
    """`require_writable` for a file's folder, and the file itself if it is there."""
    path = Path(path)
    if path.is_dir():
        raise AdvPurifyError(f"{key}={path} is a folder: set {key}= to a file, e.g. {path / 'results.csv'}")
    require_writable(path.parent, key)
    if path.exists() and not os.access(path, os.W_OK):
        raise AdvPurifyError(f"{key}={path} is not writable: set {key}= to a file you can write")


def finished_rows(path: str | Path, fingerprint: str) -> dict[float, dict[str, str]]:
    """eps -> the latest row already written with this fingerprint (what a rerun can skip), with
    numbers parsed back from the CSV's text."""
    return {float(r["eps"]): typed(r) for r in read_rows(path) if r.get("fingerprint") == fingerprint}


TEXT_COLUMNS = {"data", "defense", "classifier", "attack", "threat", "commit", "fingerprint", "models"}


def typed(row: dict[str, str]) -> dict[str, Any]:
    """A row read back from CSV with its numbers as numbers (empty cells stay empty)."""

    def parse(value: str) -> Any:
        try:
            return int(value)
        except ValueError:
            return float(value) if value else value

    return {key: value if key in TEXT_COLUMNS else parse(value) for key, value in row.items()}
