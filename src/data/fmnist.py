"""Fashion-MNIST (Xiao et al. 2017): 60k/10k, 28x28 grayscale; optionally zero-padded to 32x32."""

from __future__ import annotations

import torch
import torchvision

from src.data.base import ImageDataModule, gunzip_verified, sha256
from src.runtime.console import console
from src.runtime.errors import AdvPurifyError

# sha256 of the uncompressed IDX files (the published contents; ../shared/data/README.md).
RAW_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


class FashionMNISTDataModule(ImageDataModule):
    name = "fmnist"
    channels = 1
    native_size = 28
    allowed_sizes = (28, 32)

    def read_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._ensure_unpacked()
        dataset = torchvision.datasets.FashionMNIST(self.cache_dir, train=train, download=False)
        return dataset.data.unsqueeze(1), dataset.targets.long()

    def _ensure_unpacked(self) -> None:
        """Put the uncompressed IDX files where torchvision reads them, once."""
        raw = self.cache_dir / "FashionMNIST" / "raw"
        for name, expected in RAW_SHA256.items():  # a damaged cache is rebuilt, never read
            if (raw / name).exists() and sha256(raw / name) != expected:
                console.print(f"[yellow]{raw / name} fails its published sha256: unpacking it again")
                (raw / name).unlink()
        missing = [name for name in RAW_SHA256 if not (raw / name).exists()]
        if not missing:
            return
        if self.source_dir is None:
            try:
                torchvision.datasets.FashionMNIST(self.cache_dir, train=True, download=True)
                torchvision.datasets.FashionMNIST(self.cache_dir, train=False, download=True)
            except Exception as err:
                raise AdvPurifyError(
                    f"could not download Fashion-MNIST ({err}): set paths.data_dir to a folder "
                    "holding FashionMNIST/raw/*-ubyte.gz (e.g. ../shared/data)"
                ) from err
            return
        for name in missing:
            source = self.source_dir / "FashionMNIST" / "raw" / f"{name}.gz"
            if not source.exists():
                raise AdvPurifyError(
                    f"Fashion-MNIST file {source} not found: paths.data_dir must hold "
                    "FashionMNIST/raw/*-ubyte.gz (e.g. ../shared/data)"
                )
            gunzip_verified(source, raw / name, RAW_SHA256[name])
