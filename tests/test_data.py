"""Data modules load real Fashion-MNIST and CIFAR-10 (JPEG copy) slices, and fail clearly."""

from __future__ import annotations

import gzip
import os
import shutil

import pytest
import torch

from src.data.cifar10 import CIFAR10DataModule
from src.data.fmnist import FashionMNISTDataModule
from src.runtime.errors import AdvPurifyError

DATA = os.environ.get("ADVPURIFY_DATA")
CACHE = os.path.expanduser(os.environ.get("ADVPURIFY_CACHE", "~/.cache/advpurify"))


def fmnist(**kwargs) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(
        DATA, kwargs.pop("cache_dir", CACHE), kwargs.pop("image_size", 28), **kwargs
    )


def test_fmnist_real_slice_has_shapes_ranges_and_labels():
    dm = fmnist(test_limit=1000)
    dm.setup()
    assert len(dm.splits["train"]) == 55_000 and len(dm.splits["val"]) == 5_000
    x, y = dm.test_tensors()
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1
    assert y.dtype == torch.long and set(y.tolist()) == set(range(10))
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (128, 1, 28, 28) and yb.shape == (128,)


def test_fmnist_first_test_labels_are_the_published_ones():
    _, y = fmnist().test_tensors(10)
    assert y.tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # ankle boot, pullover, trouser, ...


def test_fmnist_pads_with_zeros_to_32():
    x28, _ = fmnist().test_tensors(50)
    x32, _ = fmnist(image_size=32).test_tensors(50)
    assert x32.shape == (50, 1, 32, 32)
    assert torch.equal(x32[..., 2:30, 2:30], x28)
    assert x32[..., :2, :].abs().sum() == 0 and x32[..., :, 30:].abs().sum() == 0


def test_split_is_seeded_and_disjoint():
    a, b, c = fmnist(split_seed=0), fmnist(split_seed=0), fmnist(split_seed=1)
    for dm in (a, b, c):
        dm.setup("fit")
    assert torch.equal(a.splits["val"].images, b.splits["val"].images)
    assert not torch.equal(a.splits["val"].images, c.splits["val"].images)
    train = {bytes(img.numpy()) for img in a.splits["train"].images[:3000]}
    assert not any(bytes(img.numpy()) in train for img in a.splits["val"].images[:3000])


def test_cifar10_jpeg_copy_loads():
    dm = CIFAR10DataModule(DATA, CACHE, 32, test_limit=500)
    x, y = dm.test_tensors()
    assert x.shape == (500, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert len(set(y.tolist())) == 10  # mixed, not ImageFolder's class by class
    dm.setup("fit")
    assert len(dm.splits["train"]) == 45_000


def test_missing_source_dir_is_a_clear_error(tmp_path):
    with pytest.raises(
        AdvPurifyError, match=r"paths.data_dir=.*is not a directory.*or set paths.data_dir=null"
    ):
        FashionMNISTDataModule(str(tmp_path / "nope"), str(tmp_path / "cache"), 28)


def test_source_dir_without_the_files_is_a_clear_error(tmp_path):
    dm = FashionMNISTDataModule(str(tmp_path), str(tmp_path / "cache"), 28)
    with pytest.raises(AdvPurifyError, match="FashionMNIST/raw"):
        dm.setup("test")


def test_corrupt_file_is_a_clear_error(tmp_path):
    raw = tmp_path / "src" / "FashionMNIST" / "raw"
    shutil.copytree(os.path.join(DATA, "FashionMNIST", "raw"), raw)
    os.chmod(raw, 0o755)
    target = raw / "t10k-labels-idx1-ubyte.gz"
    os.chmod(target, 0o644)
    with gzip.open(target, "rb") as f:
        labels = bytearray(f.read())
    labels[100] = (labels[100] + 1) % 10  # one flipped label
    with gzip.open(target, "wb") as f:
        f.write(labels)
    dm = FashionMNISTDataModule(str(tmp_path / "src"), str(tmp_path / "cache"), 28)
    with pytest.raises(AdvPurifyError, match="corrupt"):
        dm.setup("test")


def test_bad_image_size_is_a_clear_error():
    with pytest.raises(AdvPurifyError, match=r"data.image_size=30.*\[28, 32\]"):
        fmnist(image_size=30)


class OnDevice:
    """What a data module sees of a Trainer: the device it trains on."""

    class strategy:
        root_device = torch.device("meta")


def test_resident_splits_move_once_to_the_training_device_and_batches_are_cut_there():
    dm = fmnist(train_limit=256, val_limit=64, resident=True)
    dm.setup("fit")
    dm.trainer = OnDevice()
    x, y = next(iter(dm.train_dataloader()))
    assert x.device.type == "meta" and y.device.type == "meta" and x.shape == (128, 1, 28, 28)
    assert dm.splits["train"].images.device.type == "meta"
    plain = fmnist(train_limit=256, val_limit=64)
    plain.setup("fit")
    plain.trainer = OnDevice()
    assert next(iter(plain.train_dataloader()))[0].device.type == "cpu"  # Lightning copies per batch


def test_resident_data_with_worker_processes_is_refused():
    with pytest.raises(AdvPurifyError, match="num_workers=0"):
        fmnist(resident=True, num_workers=2)


def test_cifar10_jpeg_test_images_come_in_a_fixed_mixed_order():
    """The copy's folders sort by class; the first n test images must not be one class."""
    dm = CIFAR10DataModule(DATA, CACHE, 32)
    x, y = dm.test_tensors(1000)
    counts = torch.bincount(y, minlength=10)
    assert counts.min() > 60 and counts.max() < 140  # about 100 of each class
    again = CIFAR10DataModule(DATA, CACHE, 32)
    assert torch.equal(again.test_tensors(1000)[0], x)  # the same order every time
