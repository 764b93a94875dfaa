"""Every classifier config builds and gives N x 10 logits on its dataset's inputs."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from src.classifiers.module import ClassifierModule
from tests.conftest import CONF, compose_cfg

NAMES = sorted(p.stem for p in (CONF / "classifier").glob("*.yaml"))
CASES = [
    (name, data, size)
    for name in NAMES
    for data, size in (
        [("fmnist", 28), ("fmnist", 32)]
        if name.startswith("fmnist")
        else [("cifar10", 32)]
        if name.startswith("cifar")
        else [("fmnist", 32), ("cifar10", 32)]
    )
]


@pytest.mark.parametrize(("name", "data", "size"), CASES, ids=[f"{n}-{d}{s}" for n, d, s in CASES])
def test_forward_shape(name, data, size, tmp_path):
    cfg = compose_cfg("train", [f"classifier={name}", f"data={data}", f"data.image_size={size}"], tmp_path)
    spec = OmegaConf.to_container(cfg.classifier, resolve=True)
    shape = (cfg.data.channels, size, size)
    module = ClassifierModule(name, data, shape, 10, spec["net"], spec["optimizer"], spec["scheduler"]).eval()
    with torch.no_grad():
        logits = module(torch.rand(2, *shape))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in module.parameters()}  # every weight, nothing else
    assert optimizer.param_groups[0]["lr"] == pytest.approx(spec["optimizer"]["lr"])


def test_resnet_depths_follow_6n_plus_2(tmp_path):
    for name, depth in [("resnet20", 20), ("resnet32", 32), ("resnet62", 62), ("resnet110", 110)]:
        cfg = compose_cfg("train", [f"classifier={name}"], tmp_path)
        assert 6 * cfg.classifier.net.n + 2 == depth
