"""The native backend against ART on the same real inputs and model: FGSM, BIM (L-inf and L2),
CW-L-inf and DeepFool image for image, PGD and CW-L2 on success rate; per-image budgets."""

from __future__ import annotations

import pytest
import torch

from src.api import load_classifier
from src.attacks.art import ArtAttack
from src.attacks.native import craft, gradient_attack
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
        x_adv = gradient_attack(model, x[:8], y[:8], 0.1, steps=2, rel_step=0.5)
    assert not torch.equal(x_adv, x[:8])
    assert all(p.grad is None for p in model.parameters())


def test_unknown_attack_and_no_steps_are_clear_errors(model_and_slice):
    model, x, y = model_and_slice
    with pytest.raises(AdvPurifyError, match="not a bounded gradient attack"):
        craft("cw", model, x, y, 0.1, steps=1)
    with pytest.raises(AdvPurifyError, match="steps >= 1"):
        gradient_attack(model, x, y, 0.1, steps=0)


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


def test_backends_give_the_same_l2_fgsm_and_bim_images(model_and_slice):
    model, x, y = model_and_slice
    native, art = backends("fgsm", 1.0, norm=2)
    ours = native(model, x, y)
    assert torch.allclose(ours, art(model, x, y), atol=1e-6)
    assert (ours - x).flatten(1).norm(dim=1).max() <= 1.0 + 1e-5
    native, art = backends("bim", 1.0, norm=2, rel_step=0.1667, max_iter=10)
    ours, theirs = native(model, x, y), art(model, x, y)
    same = (ours - theirs).flatten(1).abs().max(1).values < 1e-5
    assert same.float().mean() >= 0.95
    assert abs(accuracy(model, ours, y) - accuracy(model, theirs, y)) <= 2 / len(y)


@pytest.mark.parametrize(("norm", "eps"), [("inf", 0.05), ("2", 1.0)])
def test_backends_agree_on_the_pgd_success_rate(model_and_slice, norm, eps):
    model, x, y = model_and_slice
    torch.manual_seed(0)
    native, art = backends("pgd", eps, norm=norm, rel_step=0.0333, max_iter=40, num_random_init=1)
    rates = [accuracy(model, attack(model, x, y), y) for attack in (native, art)]
    assert rates[0] < accuracy(model, x, y) - 0.1
    assert abs(rates[0] - rates[1]) <= 0.05  # random starts differ: 128 images, within 5 points


def minimal_norm_pair(model_and_slice, name: str, n: int, **settings):
    """Both backends' examples on the first n images, with the clean images and labels."""
    model, x, y = model_and_slice
    x, y = x[:n], y[:n]
    native, art = backends(name, None, **settings)
    return native(model, x, y), art(model, x, y), x, y


def fooled(model, x_adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def test_cw_linf_gives_arts_images(model_and_slice):
    """Deterministic, and our one Adam path per tau round stands for ART's run per c: same images."""
    model = model_and_slice[0]
    ours, theirs, _, y = minimal_norm_pair(model_and_slice, "cw", 16, norm="inf", max_iter=10)
    same = (ours - theirs).flatten(1).abs().amax(1) < 1e-4
    assert same.sum() >= 15
    assert fooled(model, ours, y).any()
    assert (fooled(model, ours, y) != fooled(model, theirs, y)).sum() <= 1


def test_cw_l2_agrees_with_art_on_success_and_distance(model_and_slice):
    model = model_and_slice[0]
    settings = {"norm": 2, "binary_search_steps": 5, "max_iter": 10, "initial_const": 1.0}
    ours, theirs, x, y = minimal_norm_pair(model_and_slice, "cw_l2", 24, **settings)
    ours_fooled, theirs_fooled = fooled(model, ours, y), fooled(model, theirs, y)
    # images on a decision boundary (margin ~1e-7) may round either way: one in 24
    assert abs(ours_fooled.float().mean() - theirs_fooled.float().mean()) <= 1 / 24
    assert ours_fooled.float().mean() >= 0.75
    both = ours_fooled & theirs_fooled
    l2 = [(a - x).flatten(1).norm(dim=1)[both] for a in (ours, theirs)]
    assert torch.allclose(l2[0], l2[1], rtol=0.05, atol=1e-3)


def test_deepfool_gives_arts_images(model_and_slice):
    model = model_and_slice[0]
    settings = {"norm": 2, "max_iter": 50, "overshoot": 0.02, "nb_grads": 10}
    ours, theirs, x, y = minimal_norm_pair(model_and_slice, "deepfool", 24, **settings)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert fooled(model, ours, y).float().mean() >= 0.9
    unfooled = ~fooled(model, ours, y)
    assert torch.equal(ours[unfooled], x[unfooled])  # kept only where it fools


def test_minimal_norm_attacks_reject_bad_settings(model_and_slice):
    model, x, y = model_and_slice
    from src.attacks import make_attack

    with pytest.raises(AdvPurifyError, match="max_iter >= 1"):
        make_attack("native", name="cw_l2", norm=2, max_iter=0)(model, x[:2], y[:2])
    with pytest.raises(AdvPurifyError, match="decrease_factor"):
        make_attack("native", name="cw", decrease_factor=1.5)(model, x[:2], y[:2])
    with pytest.raises(AdvPurifyError, match="nb_grads >= 2"):
        make_attack("native", name="deepfool", norm=2, nb_grads=1)(model, x[:2], y[:2])


def test_backend_choice_errors_name_the_way_out():
    from src.attacks import make_attack

    with pytest.raises(AdvPurifyError, match="backend=typo is unknown"):
        make_attack("typo", name="fgsm", eps=0.1)
    for backend in ("native", "art"):
        with pytest.raises(AdvPurifyError, match="attack typo is unknown"):
            make_attack(backend, name="typo", eps=0.1)
        with pytest.raises(AdvPurifyError, match=r"minimises the inf-norm: set attack\.norm=inf"):
            make_attack(backend, name="cw", norm=2)
        with pytest.raises(AdvPurifyError, match="needs eps > 0"):
            make_attack(backend, name="pgd", eps=0)
