"""docs/adding_a_defense.md and docs/adding_an_attack.md, followed: parts from a test-local
module (tests/plugins.py), each one class and one config, train, evaluate, export, report and
check their own settings through the public entry points, with no edit to src/."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

import tests.plugins  # noqa: F401  (registers defense=tiny, defense=median, attack=two_step)
from src.api import build_defense, load_classifier, load_defense
from src.defenses.base import DefendedClassifier
from src.eval import evaluate
from src.evaluation.settings import validate
from src.export import export
from src.report import report
from src.runtime.errors import AdvPurifyError
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


def test_a_new_attack_and_a_weightless_defense_evaluate_export_and_report(trained, tmp_path):
    install_target(trained, tmp_path)
    grid = ["debug=smoke", "defense=median", "attack=two_step", "threat=pipeline", "eval.eps=[0,0.2]"]
    rows = evaluate(compose_cfg("eval", grid, tmp_path))
    assert [(r["defense"], r["attack"], r["iterations"]) for r in rows] == [("median", "two_step", 2)] * 2
    assert rows[1]["adv_acc"] < rows[0]["purified_clean_acc"] - 0.2  # the attack attacks

    folder = export(compose_cfg("export", ["debug=smoke", "defense=median"], tmp_path))
    assert {p.name for p in folder.iterdir()} == {"purifier.pt", "defended.pt", "card.json", "card.md"}
    x = torch.rand(4, 1, 28, 28)
    scripted = torch.jit.load(str(folder / "purifier.pt"))
    assert torch.allclose(scripted(x), load_defense("fmnist", "median").purify(x))
    assert torch.allclose(load_defense("fmnist", "median", zoo=tmp_path / "zoo").purify(x), scripted(x))

    written = report(tmp_path / "results" / "results.csv", tmp_path / "report")
    assert "median" in written.read_text() and "two_step" in written.read_text()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["defense=median", "defense.size=-1"], r"^defense.size=-1: it must be an odd whole number >= 1$"),
        (["defense=tiny", "defense.width=0"], r"^defense.width=0: it must be a whole number >= 1$"),
        (["attack=two_step", "attack.steps=0"], r"^attack.steps=0: it must be a whole number >= 1$"),
    ],
)
def test_a_new_part_refuses_a_bad_setting_in_one_line(tmp_path, overrides, message):
    with pytest.raises(AdvPurifyError, match=message):
        validate(compose_cfg("eval", overrides, tmp_path))
    if overrides[0].startswith("defense=median"):
        with pytest.raises(AdvPurifyError, match=message):  # built from Python, too
            build_defense(compose_cfg("eval", overrides, tmp_path).defense, "fmnist")
