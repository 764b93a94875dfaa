"""Shared machinery for our image datasets.

Both datasets fit in memory, so a split is two tensors (uint8 images N x C x H x W, int64
labels). Batches are taken by fancy indexing with a `BatchSampler`, which avoids a Python
call per image, and scaled to [0, 1] floats only when served (SPEC 1: no mean/std
normalisation at the model boundary).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from src.runtime.errors import AdvPurifyError


class ScaledImages(Dataset):
    """Serves uint8 images as float pixels in [0, 1] (float images, e.g. purified, as they are).

    Indexable by a list of indices, so a whole batch is one fancy-indexing call.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        images = self.images[index]
        return (images.float().div_(255.0) if images.dtype == torch.uint8 else images), self.labels[index]


class ImageDataModule(pl.LightningDataModule):
    """Train/val/test splits of one dataset, with a seeded train/val split and optional limits.

    Subclasses only say how to read a split from their source (`read_split`); everything a
    run can tune (batch size, split, padding, slice sizes for smoke runs) lives here.
    """

    name: str
    channels: int
    native_size: int
    allowed_sizes: tuple[int, ...]
    num_classes: int = 10

    def __init__(
        self,
        source_dir: str | None,
        cache_dir: str,
        image_size: int,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        split_seed: int = 0,
        train_limit: int | None = None,
        val_limit: int | None = None,
        test_limit: int | None = None,
        num_workers: int = 0,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        resident: bool = False,
    ) -> None:
        super().__init__()
        if resident and num_workers:
            raise AdvPurifyError(
                "data.module.resident=true cuts batches on the device itself: set data.module.num_workers=0"
            )
        if image_size not in self.allowed_sizes:
            raise AdvPurifyError(
                f"data.image_size={image_size} is not available for {self.name}: "
                f"choose one of {list(self.allowed_sizes)}"
            )
        self.source_dir = Path(source_dir).expanduser() if source_dir else None
        if self.source_dir is not None and not self.source_dir.is_dir():
            raise AdvPurifyError(
                f"paths.data_dir={source_dir} is not a directory: point it at the folder that "
                "holds the datasets (e.g. ../shared/data), or set paths.data_dir=null to download"
            )
        self.cache_dir = Path(cache_dir).expanduser()
        self.image_size = image_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.limits = {"train": train_limit, "val": val_limit, "test": test_limit}
        self.num_workers = num_workers
        self.augment = augment
        self.resident = resident
        self.splits: dict[str, ScaledImages] = {}

    @abstractmethod
    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (uint8 images N x C x H x W at native size, int64 labels) for one split."""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "train" not in self.splits:
            images, labels = self._resized(*self.read_split(train=True))
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
            val_idx, train_idx = order[: self.val_size], order[self.val_size :]
            self.splits["train"] = self._limited("train", images[train_idx], labels[train_idx])
            self.splits["val"] = self._limited("val", images[val_idx], labels[val_idx])
        if stage in (None, "test", "predict") and "test" not in self.splits:
            self.splits["test"] = self._limited("test", *self._resized(*self.read_split(train=False)))

    def _resized(self, images: torch.Tensor, labels: torch.Tensor):
        pad = (self.image_size - self.native_size) // 2
        if pad:
            images = F.pad(images, (pad, pad, pad, pad))  # zeros, SPEC 1 decision
        return images.contiguous(), labels

    def _limited(self, split: str, images: torch.Tensor, labels: torch.Tensor) -> ScaledImages:
        limit = self.limits[split]
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        return ScaledImages(images, labels)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.splits[split]
        if self.resident and self.trainer is not None:
            # these datasets fit on any GPU: moved once, batches are cut there, no copy per step
            device = self.trainer.strategy.root_device
            dataset.images, dataset.labels = dataset.images.to(device), dataset.labels.to(device)
        order = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        size = self.batch_size if shuffle else self.eval_batch_size
        sampler = BatchSampler(order, batch_size=size, drop_last=False)
        return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=self.num_workers)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Augment training batches only, on the device they were moved to."""
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            x, y = batch
            batch = self.augment(x), y
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    @torch.no_grad()
    def map_images(self, fn, batch_size: int = 500) -> None:
        """Replace every split's images by `fn(images)` once, e.g. by a purifier's outputs.

        The chapter-5 protocol retrains the target on purified data (SPEC 3.3); computing the
        purified splits once keeps every epoch as cheap as training on clean data.
        """
        self.setup()
        for split in self.splits.values():
            x, _ = split[:]
            split.images = torch.cat([fn(batch) for batch in x.split(batch_size)]).clamp_(0, 1)

    def test_tensors(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `n` test images as float pixels, for attacks that want whole tensors."""
        self.setup("test")
        test = self.splits["test"]
        index = slice(None) if n is None else slice(0, n)
        return test[index]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gunzip_verified(source: Path, dest: Path, expected_sha256: str) -> None:
    """Decompress `source` to `dest` atomically, refusing contents that fail their checksum."""
    tmp = dest.with_name(dest.name + ".tmp")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with gzip.open(source, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    except (OSError, EOFError) as err:
        tmp.unlink(missing_ok=True)
        raise AdvPurifyError(f"{source} is corrupt ({err}): replace it with a good copy") from err
    if sha256(tmp) != expected_sha256:
        tmp.unlink()
        raise AdvPurifyError(f"{source} is corrupt (its contents fail the published sha256): replace it")
    os.replace(tmp, dest)
