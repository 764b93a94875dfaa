"""Where inference-heavy steps run: `device=auto` takes the GPU when one is visible."""

from __future__ import annotations

import torch

from src.errors import AdvPurifyError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise AdvPurifyError(f"device={device} is unknown: choose auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise AdvPurifyError("device=cuda but no GPU is visible: use device=cpu or device=auto")
    return torch.device(device)
