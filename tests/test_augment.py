"""The voters' training augmentation (SPEC 3.2): per-image draws, training batches only."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from src.data.augment import RandomStretch, VoterAugmentation
from tests.test_data import fmnist


def real_images(n: int = 64) -> torch.Tensor:
    dm = fmnist(test_limit=n)
    return dm.test_tensors()[0]


def test_flips_alone_give_one_of_the_four_flips_of_each_image():
    x = real_images()
    out = VoterAugmentation(flip=True, translate=0, stretch=0, noise_std=0)(x)
    candidates = torch.stack([x, x.flip(-1), x.flip(-2), x.flip(-1, -2)])  # 4 x N x C x H x W
    assert ((candidates == out).flatten(2).all(-1)).any(0).all()
    assert not torch.equal(out, x)  # 64 images, each left alone with chance 1/4


def test_each_image_gets_its_own_draw_and_stays_in_range():
    image = real_images(1)
    out = VoterAugmentation()(image.expand(16, -1, -1, -1))
    assert out.shape == (16, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert len({tuple(o.flatten().tolist()) for o in out}) == 16


def test_noise_is_additive_zero_mean_with_the_configured_std():
    x = torch.full((256, 1, 28, 28), 0.5)
    noise = VoterAugmentation(flip=False, translate=0, stretch=0, noise_std=0.1)(x) - x
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.1) < 0.005


def test_stretch_keeps_the_size_and_changes_the_shape():
    x = real_images(8)
    torch.manual_seed(0)
    out = torch.stack([RandomStretch(0.1)(image) for image in x])
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert (out.sum((1, 2, 3)) / x.sum((1, 2, 3))).sub(1).abs().max() < 0.3  # same object, rescaled


def test_datamodule_augments_training_batches_only():
    dm = fmnist(train_limit=64, augment=VoterAugmentation())
    dm.setup("fit")
    batch = dm.splits["train"][:]
    dm.trainer = SimpleNamespace(training=True)
    augmented, _ = dm.on_after_batch_transfer(batch, 0)
    dm.trainer = SimpleNamespace(training=False)
    served, _ = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(augmented, batch[0]) and torch.equal(served, batch[0])
