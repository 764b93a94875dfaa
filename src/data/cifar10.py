"""CIFAR-10 (Krizhevsky 2009): 50k/10k, 32x32 RGB.

Two variants (`data.variant`): `official` is torchvision's binary release; `jpeg` is the
lossy JPEG copy in ImageFolder layout (../shared/data/README.md), decoded once into a
tensor cache. Numbers measured on `jpeg` must say "CIFAR-10 (JPEG copy)".
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import torch
import torchvision
from torchvision.io import decode_jpeg

from src.data.base import ImageDataModule, sha256
from src.runtime.console import console
from src.runtime.errors import AdvPurifyError

JPEG_ARCHIVE = "cifar10-jpeg.tar.gz"
JPEG_SHA256 = "efac85c8ed52f4ead1e1f1b670d8dcf435d551fccebdd8b6365e0a01a504f3a4"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT_SIZES = {"train": 50_000, "test": 10_000}
VARIANTS = ("official", "jpeg")
# The JPEG copy's test folders hold one class each, so its first 1,000 images would all be
# airplanes; a fixed shuffle mixes them (the official release's order is mixed already).
TEST_ORDER_SEED = 0


class CIFAR10DataModule(ImageDataModule):
    name = "cifar10"
    channels = 3
    native_size = 32
    allowed_sizes = (32,)

    def __init__(self, *args, variant: str = "jpeg", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if variant not in VARIANTS:
            raise AdvPurifyError(f"data.variant={variant} is unknown: choose one of {list(VARIANTS)}")
        self.variant = variant

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.variant == "official":
            return self._read_official(train)
        split = "train" if train else "test"
        cache = self.cache_dir / "cifar10-jpeg" / f"{split}.pt"
        stamp = cache.with_name(cache.name + ".sha256")
        if cache.exists() and not (stamp.exists() and sha256(cache) == stamp.read_text().strip()):
            console.print(f"[yellow]{cache} fails the checksum it was written with: decoding it again")
            cache.unlink()
        if not cache.exists():
            self._decode_archive()
        images, labels = torch.load(cache, weights_only=True)
        if not train:  # the folders sort by class, and evaluation takes the first n test images
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(TEST_ORDER_SEED))
            images, labels = images[order], labels[order]
        return images, labels

    def _read_official(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        root = self.source_dir or self.cache_dir
        try:
            dataset = torchvision.datasets.CIFAR10(root, train=train, download=self.source_dir is None)
        except RuntimeError as err:
            raise AdvPurifyError(
                f"official CIFAR-10 not found under {root} ({err}): put cifar-10-batches-py there, "
                "set paths.data_dir=null to download it, or use data.variant=jpeg"
            ) from err
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)
        return images, torch.tensor(dataset.targets, dtype=torch.long)

    def _decode_archive(self) -> None:
        """Decode every JPEG of the archive once into `<cache>/cifar10-jpeg/{train,test}.pt`."""
        if self.source_dir is None:
            raise AdvPurifyError(
                "data.variant=jpeg needs paths.data_dir pointing at the folder that holds "
                f"{JPEG_ARCHIVE} (e.g. ../shared/data); use data.variant=official to download"
            )
        archive = self.source_dir / JPEG_ARCHIVE
        if not archive.exists():
            raise AdvPurifyError(f"{archive} not found: paths.data_dir must hold {JPEG_ARCHIVE}")
        if sha256(archive) != JPEG_SHA256:
            raise AdvPurifyError(f"{archive} is corrupt (sha256 mismatch): replace it")
        found: dict[str, list[tuple[int, str, torch.Tensor]]] = {"train": [], "test": []}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = Path(member.name).parts  # cifar10-jpeg/<split>/<class>/NNNN.jpg
                if not member.isfile() or len(parts) != 4 or parts[1] not in found:
                    continue
                data = torch.frombuffer(bytearray(tar.extractfile(member).read()), dtype=torch.uint8)
                found[parts[1]].append((CLASSES.index(parts[2]), parts[3], decode_jpeg(data)))
        out = self.cache_dir / "cifar10-jpeg"
        out.mkdir(parents=True, exist_ok=True)
        for split, items in found.items():
            if len(items) != SPLIT_SIZES[split]:
                raise AdvPurifyError(
                    f"{archive} holds {len(items)} {split} images, expected {SPLIT_SIZES[split]}: "
                    "replace it with a good copy"
                )
            items.sort(key=lambda item: item[:2])  # ImageFolder order: class, then file name
            images = torch.stack([image for _, _, image in items])
            labels = torch.tensor([label for label, _, _ in items], dtype=torch.long)
            # names of this process's own: parallel jobs (reproduce jobs=N) may decode at once
            tmp, digest = out / f"{split}.pt.{os.getpid()}.tmp", out / f"{split}.pt.sha256.{os.getpid()}.tmp"
            torch.save((images, labels), tmp)
            digest.write_text(sha256(tmp))
            os.replace(digest, out / f"{split}.pt.sha256")
            os.replace(tmp, out / f"{split}.pt")
