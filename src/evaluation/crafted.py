"""Adversarial images already crafted, reused wherever the same crafting comes again.

Under an oblivious threat the images do not depend on the defense, and under `paper` the
surrogates' share does not depend on the white-box target either: each defense's cell would
craft them again. On CIFAR-10 one PGD crafting on the three DenseNets takes 40 minutes per eps
on a 2-core CPU, and the plan runs it for 13 defenses. So each part of a crafting (one model's
share of the images) is kept under a key made of everything it is computed from: the attack's
settings and budget, the model (its class, hyperparameters and weights), the images and labels,
and the random state it starts from. A part found under its key is the very tensor the attack
would return; the random state it left is restored, so the parts after it draw what they would.

Kept in memory, the parts die with the process, and a run's time budget often ends between two
defenses' cells of one crafting: with `paths.crafted_dir` they are also written there, one file
per part, so the next process (the next `src.reproduce`, the next GPU machine) goes
on from them. A file holds tensors only and is read with `weights_only=True`.

One crafting can outlast a run's budget too: AutoAttack through Defense-GAN on 100 CIFAR-10 images
ran 20 minutes on a 2-core CPU without finishing one eps. With `eval.part_size` each model's
share is cut into parts of that many images, each kept as soon as it is crafted, and a run's
deadline is checked between parts, so the next run goes on from the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from src.runtime.deadline import OutOfTime, past
from src.runtime.errors import AdvPurifyError

CACHE_BYTES = 2 << 30  # images kept at most; the oldest go first


@dataclass
class Part:
    """One model's share of a crafting: its adversarial images, the random state after it, and
    the seconds it took."""

    images: torch.Tensor
    rng: tuple[torch.Tensor, list[torch.Tensor] | None]
    seconds: float


class Store(dict[str, Part]):
    """Parts by key, holding at most `limit` bytes of images."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        super().__init__()
        self.limit = limit

    def find(self, key: str, device: torch.device) -> Part | None:
        return self.get(key)

    def keep(self, key: str, part: Part) -> None:
        self[key] = part
        while len(self) > 1 and sum(p.images.nbytes for p in self.values()) > self.limit:
            del self[next(iter(self))]


class FolderStore:
    """Parts as files `<key>.pt` in `folder`, for every later process. Nothing is evicted: a
    part is the n images of one model's share (12 MB for 1,000 CIFAR-10 images), and the folder
    may be deleted whenever no run is going; its parts are then crafted again."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def find(self, key: str, device: torch.device) -> Part | None:
        path = self.folder / f"{key}.pt"
        if not path.exists():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            part = Part(
                saved["images"].to(device),
                (saved["rng_cpu"], saved["rng_cuda"] or None),
                float(saved["seconds"]),
            )
        except Exception as error:  # any unreadable or foreign file: the same fix
            raise AdvPurifyError(
                f"{path} is not a crafted part this version can read ({type(error).__name__}): "
                "delete it and it is crafted again"
            ) from None
        return part

    def keep(self, key: str, part: Part) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.pt"
        partial_path = path.with_suffix(f".{os.getpid()}.partial")  # a killed write leaves no part
        cpu, cuda = part.rng
        saved = {"images": part.images.cpu(), "rng_cpu": cpu, "rng_cuda": cuda or [], "seconds": part.seconds}
        torch.save(saved, partial_path)
        os.replace(partial_path, path)


CRAFTED = Store()
"""Parts shared by every run of this process (the runs of a multirun or of `src.reproduce`)."""


def shared_store(folder: str | Path | None) -> Store | FolderStore:
    """Where the runs of an oblivious threat keep their parts: `folder` (`paths.crafted_dir`),
    or this process's memory."""
    return CRAFTED if folder is None else FolderStore(folder)


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def rng_state(device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def part_key(recipe: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str:
    """Everything one part's images are computed from, as a digest."""
    digest = hashlib.sha256(recipe.encode())
    hparams = dict(getattr(model, "hparams", None) or {})
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    digest.update(json.dumps(hparams, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + str(tuple(tensor.shape)).encode() + tensor_bytes(tensor))
    cpu, cuda = rng_state(x.device)
    for tensor in (x, y, cpu, *(cuda or [])):
        digest.update(tensor_bytes(tensor))
    return digest.hexdigest()


def crafted_part(
    store: Store | FolderStore,
    recipe: str,
    attack: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    deadline: float | None = None,
) -> tuple[Part, bool]:
    """The part found in `store` (its random state restored), or crafted now and kept; and
    whether it was crafted now. None is crafted after `deadline`: OutOfTime."""
    key = part_key(recipe, model, x, y)
    found = store.find(key, x.device)
    if found is not None:
        set_rng_state(found.rng)
        return found, False
    if past(deadline):
        raise OutOfTime(
            "out of time within a crafting: its finished parts are kept, and the next run goes on from them"
        )
    start = time.perf_counter()
    images = attack(model, x, y)
    part = Part(images, rng_state(x.device), time.perf_counter() - start)
    store.keep(key, part)
    return part, True
