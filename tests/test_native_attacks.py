"""The native backend against ART on the same real inputs and model: FGSM, BIM (L-inf and L2),
CW-L-inf and DeepFool image for image, PGD and CW-L2 on success rate; per-image budgets."""

from __future__ import annotations

import pytest
import torch

from src.api import load_classifier
from src.attacks.bim import BIM
from src.attacks.cw import CWLinf
from src.attacks.cw_l2 import CWL2
from src.attacks.deepfool import DeepFool
from src.attacks.fgsm import FGSM
from src.attacks.gradient import gradient_attack
from src.attacks.pgd import PGD
from src.runtime.errors import AdvPurifyError

CLASSES = {"fgsm": FGSM, "bim": BIM, "pgd": PGD, "cw": CWLinf, "cw_l2": CWL2, "deepfool": DeepFool}


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
    ours = gradient_attack(model, x, y, 0.1)
    art = FGSM(name="fgsm", eps=0.1, backend="art")(model, x, y)
    assert torch.allclose(ours, art, atol=1e-6)


def test_per_image_budgets_stay_in_their_balls_and_zero_keeps_the_image(model_and_slice):
    model, x, y = model_and_slice
    eps = torch.tensor([0.0, 0.05, 0.1, 0.3]).repeat(len(x) // 4)
    settings = {"fgsm": {}, "bim": {"steps": 5, "rel_step": 0.5}, "pgd": {"steps": 5, "random_init": True}}
    for name, setting in settings.items():
        x_adv = gradient_attack(model, x, y, eps, **setting)
        linf = (x_adv - x).flatten(1).abs().max(1).values
        assert torch.all(linf <= eps + 1e-6), name
        assert torch.equal(x_adv[eps == 0], x[eps == 0]), name
        assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_iterative_attacks_cut_accuracy_at_least_as_much_as_fgsm(model_and_slice):
    model, x, y = model_and_slice
    clean = accuracy(model, x, y)
    fgsm = accuracy(model, FGSM(name="fgsm", eps=0.1)(model, x, y), y)
    pgd = accuracy(model, PGD(name="pgd", eps=0.1, max_iter=10, rel_step=0.25)(model, x, y), y)
    assert fgsm < clean - 0.2 and pgd <= fgsm


def test_attacks_work_under_inference_mode_and_leave_parameters_alone(model_and_slice):
    model, x, y = model_and_slice
    with torch.inference_mode():
        x_adv = gradient_attack(model, x[:8], y[:8], 0.1, steps=2, rel_step=0.5)
    assert not torch.equal(x_adv, x[:8])
    assert all(p.grad is None for p in model.parameters())


def test_no_steps_is_a_clear_error(model_and_slice):
    model, x, y = model_and_slice
    with pytest.raises(AdvPurifyError, match="steps >= 1"):
        gradient_attack(model, x, y, 0.1, steps=0)


def backends(name: str, eps: float | None, **settings):
    """The attack in both backends, built as its config would build it."""
    budget = {} if CLASSES[name].minimal_norm is not None else {"eps": eps}
    return [CLASSES[name](name=name, backend=b, **budget, **settings) for b in ("native", "art")]


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


@pytest.mark.parametrize("backend", ["native", "art"])
def test_bad_settings_are_refused_when_the_attack_is_built(backend):
    """Before any image is attacked, in both backends, with the key to change."""
    cases = [
        (CWL2, {"norm": 2, "max_iter": 0}, r"attack\.max_iter=0: it must be a whole number >= 1"),
        (CWLinf, {"decrease_factor": 1.5}, r"0 < decrease_factor < 1"),
        (DeepFool, {"norm": 2, "nb_grads": 1}, r"attack\.nb_grads=1"),
        (BIM, {"eps": 0.01, "step": 0.05, "rel_step": None}, r"attack\.step=0\.05 exceeds eps=0\.01"),
        (PGD, {"eps": 0.1, "step": 0, "rel_step": None}, r"attack\.step=0: it must be a number > 0"),
        (PGD, {"eps": 0.1, "step": 0.05}, r"attack\.step=0\.05, attack\.rel_step=0\.1: set exactly one"),
        (PGD, {"eps": 0}, "needs eps > 0"),
        (BIM, {"eps": 0.1, "rel_step": -1}, r"attack\.rel_step=-1: it must be a number > 0"),
        (FGSM, {"eps": 0.1, "batch_size": 0}, r"attack\.batch_size=0"),
        (FGSM, {"eps": 0.1, "norm": 3}, r"attack\.norm=3 is not supported"),
    ]
    for cls, settings, message in cases:
        with pytest.raises(AdvPurifyError, match=message):
            cls(name="x", backend=backend, **settings)
    with pytest.raises(AdvPurifyError, match=r"attack\.backend=typo is unknown"):
        FGSM(name="fgsm", eps=0.1, backend="typo")
