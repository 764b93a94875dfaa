"""What a purifier does to an attacked image, as a picture: per evaluated cell, a grid of the
first test images x, their purification, x_adv and its purification (one row each).

Eval writes it as a PNG under `<results_dir>/grids/` the moment the cell is measured (and to
W&B when that logger is on); the report shows, per curve, the grid at its largest eps, so a
reader sees the reconstructions without W&B.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

IMAGES = 8  # columns of a grid: the first test images of the cell
ROWS = ("x", "purify(x)", "x_adv", "purify(x_adv)")


def grid_title(row: dict[str, Any]) -> str:
    return (
        f"{row['defense']} / {row['classifier']} / {row['attack']} eps {float(row['eps']):g} / "
        f"threat {row['threat']}; rows: {', '.join(ROWS)}"
    )


def grid_path(results_dir: str | Path, row: dict[str, Any]) -> Path:
    """grids/<data>/<defense>/<classifier>_<attack>_<threat>_eps<eps>[-seed<k>].png under
    results_dir: a second seed's cell draws its own grid beside the first one's, as its models
    sit beside them (`-seed<k>`), instead of replacing it."""
    seed = int(row.get("seed") or 0)
    suffix = f"-seed{seed}" if seed else ""
    name = f"{row['classifier']}_{row['attack']}_{row['threat']}_eps{float(row['eps']):g}{suffix}.png"
    return Path(results_dir) / "grids" / str(row["data"]) / str(row["defense"]) / name


def save_grid(picture: np.ndarray, path: Path, title: str) -> None:
    """The picture with its rows labelled, written atomically (a reader never sees half a PNG)."""
    height, width = picture.shape[:2]
    fig, ax = plt.subplots(figsize=(max(4.0, width / 40), height / 40 + 0.6))
    ax.imshow(picture, interpolation="nearest")
    step = height / len(ROWS)
    ax.set_yticks([step * (i + 0.5) for i in range(len(ROWS))], ROWS)
    ax.set_xticks([])
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
