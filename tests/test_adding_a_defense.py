"""docs/adding_a_defense.md, followed: a defense from a test-local module, one module and one
config, trains, evaluates and loads through the public entry points."""

from __future__ import annotations

import torch
from hydra.utils import instantiate

import tests.throwaway_defense  # noqa: F401  (registers defense=tiny)
from src.api import build_defense, load_classifier
from src.defenses.base import DefendedClassifier
from src.eval import evaluate
from src.train import train
from tests.conftest import compose_cfg, install_target


def test_a_new_defense_trains_evaluates_and_loads(trained, tmp_path):
    install_target(trained, tmp_path)
    fit = compose_cfg("train", ["debug=smoke", "defense=tiny", "trainer.max_epochs=2"], tmp_path)
    metrics = train(fit)
    assert metrics["checkpoint"].endswith("fmnist/28px/tiny.ckpt")

    datamodule = instantiate(fit.data.module)
    x, y = datamodule.test_tensors(256)
    untrained = instantiate(fit.defense, data="fmnist", input_shape=(1, 28, 28), num_classes=10)
    purifier = build_defense(fit.defense, "fmnist", None, tmp_path / "checkpoints", (1, 28, 28))
    with torch.no_grad():
        assert metrics["test/recon"] < 0.5 * torch.nn.functional.mse_loss(untrained.purify(x), x).item()
        classifier = load_classifier("fmnist", "fmnist_a", trained["ckpt"])
        accuracy = (DefendedClassifier(classifier, purifier)(x).argmax(1) == y).float().mean()
    assert accuracy > 0.5  # the classifier still reads the reconstructions

    rows = evaluate(
        compose_cfg("eval", ["debug=smoke", "defense=tiny", "attack=fgsm", "eval.eps=[0,0.3]"], tmp_path)
    )
    assert [r["defense"] for r in rows] == ["tiny", "tiny"]
    assert rows[0]["purified_clean_acc"] > 0.5 and rows[1]["adv_acc"] < rows[0]["purified_clean_acc"] - 0.2
