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


def backends(name: str, eps: float, **settings):
    from src.attacks import make_attack

    return [make_attack(backend, name=name, eps=eps, **settings) for backend in ("native", "art")]


def test_backends_give_the_same_fgsm_and_bim_images(model_and_slice):
    model, x, y = model_and_slice
    native, art = backends("fgsm", 0.1)
    assert torch.equal(native(model, x, y), art(model, x, y))
    native, art = backends("bim", 0.1, rel_step=0.1667, max_iter=10)
    ours, theirs = native(model, x, y), art(model, x, y)
    same = (ours - theirs).flatten(1).abs().max(1).values < 1e-5
    assert same.float().mean() >= 0.95  # ART's projection rounds differently; a rare sign flip diverges
    assert abs(accuracy(model, ours, y) - accuracy(model, theirs, y)) <= 2 / len(y)


def test_backends_agree_on_the_pgd_success_rate(model_and_slice):
    model, x, y = model_and_slice
    torch.manual_seed(0)
    native, art = backends("pgd", 0.05, rel_step=0.0333, max_iter=40, num_random_init=1)
    rates = [accuracy(model, attack(model, x, y), y) for attack in (native, art)]
    assert rates[0] < accuracy(model, x, y) - 0.1
    assert abs(rates[0] - rates[1]) <= 0.05  # random starts differ: 128 images, within 5 points


def test_backend_choice_errors_name_the_way_out():
    from src.attacks import make_attack

    with pytest.raises(AdvPurifyError, match="backend=typo is unknown"):
        make_attack("typo", name="fgsm", eps=0.1)
    with pytest.raises(AdvPurifyError, match=r"no native backend yet: use attack\.backend=art"):
        make_attack("native", name="cw")
