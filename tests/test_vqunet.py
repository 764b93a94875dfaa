"""VQUNet and its non-VQ ablation: shapes, a real smoke fit, and evaluation through the purifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from src.defenses.components.quantizer import Quantizer
from src.defenses.vqunet import VQUNet
from src.eval import evaluate
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError
from src.train import build_module
from tests.conftest import compose_cfg


@pytest.mark.parametrize("channels", [1, 3])
def test_purify_keeps_shape_and_range(channels):
    module = VQUNet(name="vqunet", data="x", input_shape=(channels, 32, 32), num_classes=10, width=8).eval()
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
        VQUNet(name="vqunet", data="fmnist", input_shape=(1, 28, 28), num_classes=10)


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


def test_retrain_trains_the_classifier_on_purified_data(trained32, tmp_path):
    from src.train import train

    overrides = [
        "debug=smoke",
        "data.image_size=32",
        "task=retrain",
        "defense=vqunet",
        f"defense_ckpt={trained32['defense_ckpt']}",
    ]
    metrics = train(compose_cfg("train", overrides, tmp_path))
    assert metrics["checkpoint"].endswith("fmnist/32px/fmnist_a+vqunet.ckpt")
    model = checkpoints.load(metrics["checkpoint"], "classifier", "fmnist")
    assert model.hparams.name == "fmnist_a+vqunet" and metrics["test/acc"] > 0.3
    rows = evaluate(
        compose_cfg(
            "eval",
            [
                "debug=smoke",
                "data.image_size=32",
                "defense=vqunet",
                "retrained=true",
                f"defense_ckpt={trained32['defense_ckpt']}",
                "eval.eps=[0.1]",
            ],
            tmp_path,
        )
    )
    assert rows[0]["classifier"] == "fmnist_a+vqunet"


def test_retrain_without_a_defense_is_a_clear_error(tmp_path):
    from src.train import train

    with pytest.raises(AdvPurifyError, match="task=retrain"):
        train(compose_cfg("train", ["debug=smoke", "task=retrain"], tmp_path))


def test_vq_analysis_rows_and_plots(trained32, tmp_path):
    from src.report import report
    from src.reporting.rows import read_rows

    common = [
        "debug=smoke",
        "data.image_size=32",
        "attack=fgsm",
        "eval.analyses=[vq_analysis]",
        "eval.eps=[0.1,0.3]",
        f"ckpt={trained32['ckpt']}",
        f"defense_ckpt={trained32['defense_ckpt']}",
        "defense=vqunet",
    ]
    evaluate(compose_cfg("eval", common, tmp_path))
    rows = read_rows(tmp_path / "results" / "vq_analysis.csv")
    values = {(r["metric"], int(r["depth"]), float(r["eps"])): float(r["value"]) for r in rows}
    assert {m for m, _, _ in values} == {"recon_l1", "pre_vq_l1", "post_vq_l1", "index_change_pct"}
    assert {d for _, d, _ in values} == {0, 1, 2, 3, 4}
    for depth in range(1, 5):  # a stronger attack moves features and codes at least as much
        assert values["pre_vq_l1", depth, 0.3] > values["pre_vq_l1", depth, 0.1] > 0
        assert 0 <= values["index_change_pct", depth, 0.1] <= values["index_change_pct", depth, 0.3] <= 100
    report(tmp_path / "results" / "results.csv", tmp_path / "out")
    assert (tmp_path / "out" / "vq_analysis_fmnist_fmnist_a_classifier_fgsm.png").stat().st_size > 10_000
    assert "index_change_pct" in (tmp_path / "out" / "REPORT.md").read_text()


def test_vq_analysis_needs_a_vqunet(trained, tmp_path):
    overrides = ["debug=smoke", "eval.analyses=[vq_analysis]", f"ckpt={trained['ckpt']}"]
    with pytest.raises(
        AdvPurifyError, match=r"eval.analyses names vq_analysis, which defense=none does not offer"
    ):
        evaluate(compose_cfg("eval", overrides, tmp_path))
