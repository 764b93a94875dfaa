"""VQUNet and its non-VQ ablation: shapes, a real smoke fit, and evaluation through the purifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from src import checkpoints
from src.defenses.components.quantizer import Quantizer
from src.defenses.vqunet import VQUNet
from src.errors import AdvPurifyError
from src.eval import evaluate
from src.train import build_module
from tests.conftest import compose_cfg


@pytest.mark.parametrize("channels", [1, 3])
def test_purify_keeps_shape_and_range(channels):
    module = VQUNet("vqunet", "x", (channels, 32, 32), 10, width=8).eval()
    x = torch.rand(3, channels, 32, 32)
    x_hat = module.purify(x)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
    sizes = [tuple(q.codebook.shape) for q in module.quantizers]
    assert sizes == [(10 * 256, 8), (10 * 64, 16), (10 * 16, 32), (10 * 4, 64)]  # K_d = C * M_d


def test_ablation_has_no_quantizer(tmp_path):
    cfg = compose_cfg("train", ["defense=vqunet_novq", "data.image_size=32"], tmp_path)
    datamodule = instantiate(cfg.data.module)
    module = build_module(cfg, datamodule)
    assert module.quantizers is None
    assert not any(isinstance(m, Quantizer) for m in module.modules())
    assert module.configure_callbacks() == []
    full = build_module(compose_cfg("train", ["defense=vqunet", "data.image_size=32"], tmp_path), datamodule)
    n_codes = sum(q.codebook.numel() for q in full.quantizers)
    assert sum(p.numel() for p in full.parameters()) - n_codes == sum(p.numel() for p in module.parameters())


def test_unpadded_fmnist_is_a_clear_error():
    with pytest.raises(AdvPurifyError, match=r"data\.image_size=32"):
        VQUNet("vqunet", "fmnist", (1, 28, 28), 10)


def test_smoke_fit_lowers_reconstruction_loss(trained32, tmp_path):
    cfg = compose_cfg(
        "train", ["debug=smoke", "defense=vqunet", "data.image_size=32", "defense.width=16"], tmp_path
    )
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    x, _ = datamodule.splits["val"][:]
    torch.manual_seed(0)
    untrained = build_module(cfg, datamodule).eval()
    trained = checkpoints.load(trained32["defense_ckpt"], "defense", "fmnist")
    with torch.no_grad():
        before, after = F.mse_loss(untrained.purify(x), x), F.mse_loss(trained.purify(x), x)
    assert after < 0.5 * before
    used = [q.usage(z.indices)[1] for q, z in zip(trained.quantizers, trained.net(x)[1], strict=True)]
    assert min(used) > 0.1, f"codebook nearly dead: fraction used per depth {used}"


def test_eval_purifies_then_classifies(trained32, tmp_path):
    overrides = [
        "debug=smoke",
        "defense=vqunet",
        "defense.width=16",
        "data.image_size=32",
        "attack=fgsm",
        f"ckpt={trained32['ckpt']}",
        f"defense_ckpt={trained32['defense_ckpt']}",
        "eval.eps=[0.1,0.3]",
    ]
    rows = evaluate(compose_cfg("eval", overrides, tmp_path))
    for row in rows:
        assert row["defense"] == "vqunet" and row["threat"] == "classifier"
        assert 0.3 < row["purified_clean_acc"] <= 1
        assert row["adv_acc"] < row["purified_clean_acc"]
