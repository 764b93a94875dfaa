"""The picture of what a purifier does to an attacked image (src/reporting/grids.py writes it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision.utils import make_grid

from src.reporting.grids import IMAGES


@torch.inference_mode()
def grid_images(defense: Any, x: torch.Tensor, x_adv: torch.Tensor) -> np.ndarray:
    """The ROWS of the first IMAGES images as one H x W x 3 uint8 picture (white gutters)."""
    x, x_adv = x[:IMAGES], x_adv[:IMAGES]
    tiles = torch.cat([x, defense.purify(x), x_adv, defense.purify(x_adv)]).float().clamp(0, 1).cpu()
    grid = make_grid(tiles, nrow=len(x), padding=2, pad_value=1.0)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
