"""channels_last (callbacks=gpu) is safe for every model: the same outputs and input gradients
in both memory formats, and a training that uses it publishes a checkpoint that loads."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.classifiers.module import ClassifierModule
from src.runtime import checkpoints
from src.train import train
from tests.conftest import CONF, compose_cfg

CLASSIFIERS = sorted(p.stem for p in (CONF / "classifier").glob("*.yaml"))
PURIFIERS = {  # small widths: the layout, not the size, is under test
    "vqunet": ["defense.width=8"],
    "vqunet_novq": ["defense.width=8"],
    "cyclegan": ["defense.width=8", "defense.disc_width=8"],
    "cyclegan_skip2": ["defense.width=8", "defense.disc_width=8"],
    "sfl_vae": ["defense.latent_dim=16"],
    "defense_vae": ["defense.latent_dim=16"],
    "defense_gan": ["defense.width=8", "defense.critic_width=8"],
    "vae": ["defense.latent_dim=16"],
}


def both_ways(module: torch.nn.Module, forward, x: torch.Tensor) -> None:
    """forward(module, x) and its input gradient match with NHWC weights and input."""
    nhwc = copy.deepcopy(module).to(memory_format=torch.channels_last)
    outputs = []
    layout = torch.channels_last if x.dim() == 4 else torch.contiguous_format  # a latent z stays as it is
    for net, inputs in ((module, x.clone()), (nhwc, x.clone().contiguous(memory_format=layout))):
        inputs.requires_grad_(True)
        out = forward(net, inputs)
        (grad,) = torch.autograd.grad(out.square().sum(), inputs)
        outputs.append((out.detach(), grad))
    (out, grad), (out_cl, grad_cl) = outputs
    assert torch.allclose(out, out_cl, atol=1e-4, rtol=1e-3)
    assert torch.allclose(grad, grad_cl, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_is_the_same_in_channels_last(name, tmp_path):
    data = "fmnist" if name.startswith("fmnist") else "cifar10"
    cfg = compose_cfg("train", [f"classifier={name}", f"data={data}", "data.image_size=32"], tmp_path)
    spec = OmegaConf.to_container(cfg.classifier, resolve=True)
    shape = (cfg.data.channels, 32, 32)
    module = ClassifierModule(name, data, shape, 10, spec["net"], spec["optimizer"], spec["scheduler"]).eval()
    torch.manual_seed(0)
    both_ways(module, lambda net, x: net(x), torch.rand(2, *shape))


@pytest.mark.parametrize("name", sorted(PURIFIERS))
def test_every_purifier_is_the_same_in_channels_last(name, tmp_path):
    cfg = compose_cfg("train", [f"defense={name}", "data=cifar10", *PURIFIERS[name]], tmp_path)
    module = instantiate(
        cfg.defense, _convert_="all", data="cifar10", input_shape=(3, 32, 32), num_classes=10
    )
    module.eval()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    if name == "defense_gan":  # its purification searches; the generator and critic are the networks
        both_ways(module.generator, lambda net, z: net(z), torch.randn(2, module.hparams.z_dim))
        both_ways(module.critic, lambda net, x: net(x), x)
    else:
        both_ways(module, lambda net, x: net(x), x)


def test_a_channels_last_training_matches_the_default_one_and_its_checkpoint_loads(tmp_path):
    metrics = {}
    for callbacks in ("default", "gpu"):
        run = ["debug=smoke", f"callbacks={callbacks}", "data.module.train_limit=256"]
        cfg = compose_cfg("train", run, tmp_path / callbacks)
        metrics[callbacks] = train(cfg)
    assert metrics["gpu"]["test/loss"] == pytest.approx(metrics["default"]["test/loss"], rel=1e-3)
    model = checkpoints.load(metrics["gpu"]["checkpoint"], "classifier", "fmnist", (1, 28, 28)).eval()
    reference = checkpoints.load(metrics["default"]["checkpoint"], "classifier", "fmnist", (1, 28, 28)).eval()
    # Adam normalizes each weight's step, so the NHWC kernels' different summation order can move a
    # weight with a near-zero gradient by up to the learning rate a step: the two trainings agree
    # to lr x steps per weight, not to float precision (an AMD EPYC measured 1.7e-3 after 4 steps).
    steps = cfg.data.module.train_limit // cfg.data.module.batch_size
    lr = cfg.classifier.optimizer.lr
    for (name, weight), (_, weight_ref) in zip(
        model.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert (weight - weight_ref).abs().max() <= steps * lr, name
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        out, out_ref = model(x), reference(x)
    assert torch.allclose(out, out_ref, atol=1e-2)
    assert torch.equal(out.argmax(1), out_ref.argmax(1))


def test_callbacks_gpu_puts_the_weights_in_channels_last(tmp_path):
    cfg = compose_cfg("train", ["callbacks=gpu", "classifier=fmnist_a"], tmp_path)
    assert "model_checkpoint" in cfg.callbacks  # the defaults stay
    callback = instantiate(cfg.callbacks.channels_last)
    spec = OmegaConf.to_container(cfg.classifier, resolve=True)
    module = ClassifierModule(
        "fmnist_a", "fmnist", (1, 32, 32), 10, spec["net"], spec["optimizer"], spec["scheduler"]
    )
    callback.setup(None, module, "fit")
    convs = [p for p in module.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous() for p in convs)
