"""SFL-VAE: the LoG kernel, the spatial frequency loss, the KL to a wide prior, a real smoke fit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from src.defenses.components.spatial_frequency import SpatialFrequencyLoss, log_kernel
from src.defenses.sfl_vae import SFLVAE, kl_to_prior
from src.runtime import checkpoints
from src.train import build_module, train
from tests.conftest import compose_cfg
from tests.test_augment import real_images


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_log_kernel_sums_to_zero_and_is_a_centred_mexican_hat(sigma):
    kernel = log_kernel(sigma)
    r = math.ceil(3 * sigma)
    assert kernel.shape == (2 * r + 1, 2 * r + 1)
    assert abs(kernel.sum()) < 1e-6
    assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
    assert kernel[r, r] == kernel.min() < 0  # the spec's sign: negative centre, positive ring


def test_log_responds_to_an_edge_not_to_a_flat_image():
    sfl = SpatialFrequencyLoss([1.0])
    flat = torch.full((1, 1, 28, 28), 0.7)
    assert sfl.response(flat, 0).abs().max() < 1e-6
    edge = torch.zeros(1, 1, 28, 28)
    edge[..., 14:] = 1.0
    response = sfl.response(edge, 0)[0, 0]
    assert response[:, 12:16].abs().min() > 0.05  # at the edge
    assert response[:, :8].abs().max() < 1e-6 and response[:, 21:].abs().max() < 1e-6  # far from it


def test_sfl_is_zero_for_identical_images_and_sees_blur_not_brightness():
    x = real_images(16) * 0.8 + 0.1
    sfl = SpatialFrequencyLoss([1.0, 2.0], [1.0, 0.5])
    assert sfl(x, x) == 0
    brighter = x + 0.05  # same edges: MSE sees it, SFL does not
    blurred = F.avg_pool2d(x, 3, 1, 1)
    assert sfl(x, brighter) < 1e-6 < F.mse_loss(brighter, x)
    assert sfl(x, blurred) > 1.0


def test_kl_vanishes_at_the_prior_and_a_wider_prior_tolerates_spread():
    mu, logvar = torch.zeros(4, 8), torch.full((4, 8), math.log(4.0))
    assert kl_to_prior(mu, logvar, prior_std=2.0).abs() < 1e-6
    spread = torch.randn(4, 8) * 1.5
    assert kl_to_prior(spread, torch.zeros(4, 8), 2.0) < kl_to_prior(spread, torch.zeros(4, 8), 1.0)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (1, 32), (3, 32)])
def test_purify_keeps_shape_and_range_and_is_deterministic(channels, size):
    vae = SFLVAE(
        name="sfl_vae", data="x", input_shape=(channels, size, size), num_classes=10, latent_dim=32
    ).eval()
    x = torch.rand(3, channels, size, size)
    x_hat = vae.purify(x)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    assert torch.equal(x_hat, vae.purify(x)) and not vae.stochastic


def test_the_ablation_has_no_spatial_frequency_loss(tmp_path):
    cfg = compose_cfg("train", ["defense=vae"], tmp_path)
    assert cfg.defense.name == "vae" and cfg.defense.sfl_weight == 0
    vae = instantiate(cfg.defense, _convert_="all", data="fmnist", input_shape=(1, 28, 28), num_classes=10)
    assert vae.sfl is None and "sfl" not in vae.losses(torch.rand(2, 1, 28, 28))


def test_smoke_fit_on_fashion_mnist_lowers_the_reconstruction_error(tmp_path):
    overrides = ["debug=smoke", "defense=sfl_vae", "defense.latent_dim=64", "trainer.max_epochs=4"]
    overrides += ["defense.train_inputs=clean"]
    overrides += ["data.module.batch_size=32"]
    cfg = compose_cfg("train", overrides, tmp_path)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    x, _ = datamodule.splits["val"][:]
    torch.manual_seed(0)
    untrained = build_module(cfg, datamodule).eval()
    metrics = train(cfg)
    vae = checkpoints.load(metrics["checkpoint"], "defense", "fmnist", (1, 28, 28))
    with torch.no_grad():
        before, after = F.mse_loss(untrained.purify(x), x), F.mse_loss(vae.purify(x), x)
    assert after < 0.5 * before
    assert after == pytest.approx(metrics["val/recon"], rel=1e-4)
