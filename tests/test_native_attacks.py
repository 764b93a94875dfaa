"""The native L-inf attacks: ART's FGSM image for image, per-image budgets, a real accuracy drop."""

from __future__ import annotations

import pytest
import torch

from src.api import load_classifier
from src.attacks.art import ArtAttack
from src.attacks.native import craft, linf_attack
from src.errors import AdvPurifyError


@pytest.fixture(scope="module")
def model_and_slice(trained):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    cfg = compose_cfg("eval", ["debug=smoke"], trained["tmp"])
    x, y = instantiate(cfg.data.module).test_tensors(128)
    model = load_classifier("fmnist", "fmnist_a", trained["ckpt"]).requires_grad_(False)
    return model, x, y


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_fgsm_matches_art_image_for_image(model_and_slice):
    model, x, y = model_and_slice
    ours = craft("fgsm", model, x, y, 0.1, steps=1)
    art = ArtAttack("fgsm", eps=0.1)(model, x, y)
    assert torch.allclose(ours, art, atol=1e-6)


def test_per_image_budgets_stay_in_their_balls_and_zero_keeps_the_image(model_and_slice):
    model, x, y = model_and_slice
    eps = torch.tensor([0.0, 0.05, 0.1, 0.3]).repeat(len(x) // 4)
    for name in ("fgsm", "bim", "pgd"):
        x_adv = craft(name, model, x, y, eps, steps=5)
        linf = (x_adv - x).flatten(1).abs().max(1).values
        assert torch.all(linf <= eps + 1e-6), name
        assert torch.equal(x_adv[eps == 0], x[eps == 0]), name
        assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_iterative_attacks_cut_accuracy_at_least_as_much_as_fgsm(model_and_slice):
    model, x, y = model_and_slice
    clean = accuracy(model, x, y)
    fgsm = accuracy(model, craft("fgsm", model, x, y, 0.1, steps=1), y)
    pgd = accuracy(model, craft("pgd", model, x, y, 0.1, steps=10), y)
    assert fgsm < clean - 0.2 and pgd <= fgsm


def test_attacks_work_under_inference_mode_and_leave_parameters_alone(model_and_slice):
    model, x, y = model_and_slice
    with torch.inference_mode():
        x_adv = linf_attack(model, x[:8], y[:8], 0.1, steps=2, rel_step=0.5)
    assert not torch.equal(x_adv, x[:8])
    assert all(p.grad is None for p in model.parameters())


def test_unknown_attack_and_no_steps_are_clear_errors(model_and_slice):
    model, x, y = model_and_slice
    with pytest.raises(AdvPurifyError, match="no native"):
        craft("cw", model, x, y, 0.1, steps=1)
    with pytest.raises(AdvPurifyError, match="steps >= 1"):
        linf_attack(model, x, y, 0.1, steps=0)
