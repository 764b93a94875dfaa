"""The API for outside attack libraries: `attackable` and `art_classifier` carry the purifier's
declared gradient, and `robust_accuracy` gives src.eval's numbers for the same settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent
from torch import nn

from src.api import art_classifier, attackable, defended, load_classifier, load_defense, robust_accuracy
from src.eval import evaluate
from src.evaluation.art_estimator import estimator
from src.runtime.errors import AdvPurifyError, build
from tests.conftest import compose_cfg


class Toy(nn.Module):
    """A purifier with a chosen gradient contract."""

    def __init__(self, fn, gradient: str = "exact", stochastic: bool = False) -> None:
        super().__init__()
        self.fn, self.gradient, self.stochastic, self.name = fn, gradient, stochastic, "toy"

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


CLASSIFIER = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
QUANTIZE = Toy(lambda x: (x * 4).round() / 4, gradient="identity")  # zero gradient almost everywhere


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x), y, reduction="sum").backward()
    return x.grad


def test_attackable_passes_bpda_gradients_where_defended_passes_none():
    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 4, 4), torch.randint(0, 3, (6,))
    bpda = loss_gradient(attackable(CLASSIFIER, QUANTIZE), x, y)
    assert torch.allclose(bpda, loss_gradient(CLASSIFIER, QUANTIZE.fn(x), y)) and bpda.abs().sum() > 0
    assert loss_gradient(defended(CLASSIFIER, QUANTIZE), x, y).abs().sum() == 0  # why attackable exists


def test_art_classifier_differentiates_the_purifier_as_declared():
    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 4, 4), torch.randint(0, 3, (6,))
    art = art_classifier(CLASSIFIER, QUANTIZE, input_shape=(1, 4, 4))
    got = art.loss_gradient(x.numpy(), np.eye(3)[y.numpy()])  # ART takes one-hot labels here
    expected = loss_gradient(CLASSIFIER, QUANTIZE.fn(x), y) / len(y)  # ART's loss is the batch mean
    assert np.allclose(got, expected.numpy(), atol=1e-6) and np.abs(got).sum() > 0
    assert np.allclose(art.predict(x.numpy()), CLASSIFIER(QUANTIZE.fn(x)).detach().numpy(), atol=1e-6)


def test_art_classifier_refuses_a_random_purifier_and_its_fix_works():
    noisy = Toy(lambda x: (x + 0.1 * torch.randn_like(x)).clamp(0, 1), stochastic=True)
    with pytest.raises(AdvPurifyError, match=r"random .*attackable\(classifier, purifier, eot_samples=8\)"):
        art_classifier(CLASSIFIER, noisy, input_shape=(1, 4, 4))
    fix = estimator(attackable(CLASSIFIER, noisy, eot_samples=8), (1, 4, 4), 3, torch.device("cpu"))
    grad = fix.loss_gradient(torch.rand(4, 1, 4, 4).numpy(), np.eye(3)[[0, 1, 2, 0]])
    assert grad.shape == (4, 1, 4, 4) and np.abs(grad).sum() > 0


def test_attackable_needs_a_draw():
    with pytest.raises(AdvPurifyError, match=r"eot_samples=0 .*need at least 1 draw"):
        attackable(CLASSIFIER, QUANTIZE, eot_samples=0)


def test_art_classifier_needs_a_shape_for_models_that_do_not_record_one():
    with pytest.raises(AdvPurifyError, match=r"pass input_shape=\(C, H, W\)"):
        art_classifier(CLASSIFIER, QUANTIZE)


@pytest.fixture(scope="module")
def vqunet(trained32, tmp_path_factory):
    """The shared 32px fmnist_a and small VQUNet through the API, and src.eval's rows for the
    same PGD-5 settings under both threats."""
    tmp = tmp_path_factory.mktemp("api_eval")
    common = [
        "debug=smoke",
        "defense=vqunet",
        "defense.width=16",
        "data.image_size=32",
        "attack=pgd",
        "attack.max_iter=5",
        f"ckpt={trained32['ckpt']}",
        f"defense_ckpt={trained32['defense_ckpt']}",
        "eval.eps=[0,0.1]",
    ]
    threats = ("classifier", "pipeline")
    rows = {t: evaluate(compose_cfg("eval", [*common, f"threat={t}"], tmp)) for t in threats}
    cfg = compose_cfg("eval", common, tmp)
    x, y = build(cfg.data.module).test_tensors(cfg.eval.n)
    classifier = load_classifier("fmnist", "fmnist_a", ckpt=trained32["ckpt"])
    purifier = load_defense("fmnist", "vqunet", ckpt=trained32["defense_ckpt"])
    return {"rows": rows, "x": x, "y": y, "classifier": classifier, "purifier": purifier}


@pytest.mark.parametrize("threat", ["classifier", "pipeline"])
def test_robust_accuracy_gives_src_eval_numbers(vqunet, threat):
    model = defended(vqunet["classifier"], vqunet["purifier"])
    got = robust_accuracy(
        model, vqunet["x"], vqunet["y"], "pgd", [0, 0.1], threat, overrides=["attack.max_iter=5"]
    )
    assert got == {row["eps"]: row["adv_acc"] for row in vqunet["rows"][threat]}


def test_art_pgd_through_the_purifier_matches_the_pipeline_threat(vqunet):
    x, y = vqunet["x"], vqunet["y"]
    art = art_classifier(vqunet["classifier"], vqunet["purifier"])
    pgd = ProjectedGradientDescent(
        art, eps=0.1, eps_step=0.1 / 30, max_iter=5, num_random_init=1, batch_size=128, verbose=False
    )
    x_adv = pgd.generate(x.numpy(), y=y.numpy())
    art_acc = float((art.predict(x_adv).argmax(1) == y.numpy()).mean())
    ours = vqunet["rows"]["pipeline"][1]
    assert ours["eps"] == 0.1 and abs(art_acc - ours["adv_acc"]) <= 0.06  # n=128, different start draws
    assert art_acc < ours["purified_clean_acc"]  # the attack bites through the purifier


def test_robust_accuracy_refuses_bad_inputs(vqunet):
    model, x, y = defended(vqunet["classifier"], vqunet["purifier"]), vqunet["x"], vqunet["y"]
    with pytest.raises(AdvPurifyError, match=r"unknown attack 'pgdd': choose one of \[.*'pgd'"):
        robust_accuracy(model, x, y, attack="pgdd")
    with pytest.raises(AdvPurifyError, match="integer class labels"):
        robust_accuracy(model, x, y.float())
    with pytest.raises(AdvPurifyError, match=r"pixels in \[0, 1\]"):
        robust_accuracy(model, x * 255, y)
    with pytest.raises(AdvPurifyError, match="budgets must be >= 0"):
        robust_accuracy(model, x, y, eps=[-0.1])
