"""AutoAttack through its reference code (pyautoattack): it differentiates what the threat hands
it, so under `threat=pipeline` it follows the defense's BPDA, and it runs as one eval row per eps."""

from __future__ import annotations

import pytest
import torch

from src.api import load_classifier
from src.attacks.autoattack import AutoAttack
from src.defenses.base import DefendedClassifier, Defense
from src.eval import evaluate
from src.evaluation.threats import Pipeline
from src.runtime.errors import AdvPurifyError
from tests.conftest import compose_cfg, install_target


class Posterize(Defense):
    """Four grey levels: a purifier whose exact gradient is zero almost everywhere (declared BPDA)."""

    gradient = "identity"

    def __init__(self, name: str = "posterize") -> None:
        super().__init__()
        self.name = name

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 3).round() / 3


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_autoattack_sees_the_declared_bpda_gradient_through_the_pipeline(trained):
    from hydra.utils import instantiate

    classifier = load_classifier("fmnist", "fmnist_a", trained["ckpt"])
    cfg = compose_cfg("eval", ["debug=smoke"], trained["tmp"])
    x, y = instantiate(cfg.data.module).test_tensors(64)
    scored = DefendedClassifier(classifier, Posterize())
    attack = AutoAttack(name="autoattack", eps=0.2, version="custom", attacks=["apgd-ce"], batch_size=64)
    torch.manual_seed(0)
    masked = attack(scored, x, y)  # the exact gradient: zero, so APGD cannot move
    torch.manual_seed(0)
    adaptive = attack(Pipeline(classifier, Posterize(), eot_samples=1), x, y)
    clean = accuracy(scored, x, y)
    assert clean > 0.5
    assert accuracy(scored, masked, y) > clean - 0.1  # gradient masking fools a naive AutoAttack
    assert accuracy(scored, adaptive, y) < 0.1  # BPDA through the pipeline does not
    assert (adaptive - x).abs().max() <= 0.2 + 1e-6


class Counted(torch.nn.Module):
    """The model, counting the batches it is asked to score."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x)


def test_a_cheaper_subset_runs_its_own_iterations_and_still_attacks(trained):
    from hydra.utils import instantiate

    classifier = load_classifier("fmnist", "fmnist_a", trained["ckpt"])
    cfg = compose_cfg("eval", ["debug=smoke"], trained["tmp"])
    x, y = instantiate(cfg.data.module).test_tensors(64)
    calls = {}
    for max_iter in (5, 20):
        counted = Counted(Pipeline(classifier, Posterize(), eot_samples=1))
        subset = {"version": "custom", "attacks": ["apgd-ce"], "max_iter": max_iter, "restarts": 1}
        attack = AutoAttack(name="autoattack", eps=0.2, batch_size=64, **subset)
        assert attack.iterations_of(subset) == max_iter
        torch.manual_seed(0)
        adv = attack(counted, x, y)
        calls[max_iter] = counted.calls
    assert calls[20] - calls[5] == 15  # one forward per APGD iteration, nothing else grows
    assert accuracy(DefendedClassifier(classifier, Posterize()), adv, y) < 0.1
    assert AutoAttack.iterations_of({"max_iter": None}) == 100  # the reference's


def test_autoattack_is_one_eval_row_per_eps_with_its_seconds(trained, tmp_path):
    install_target(trained, tmp_path)
    custom = ["attack.version=custom", "attack.attacks=[apgd-ce,apgd-t]"]  # the standard's gradient part
    overrides = ["debug=smoke", "attack=autoattack", *custom, "eval.eps=[0,0.05,0.3]", "eval.n=64"]
    rows = evaluate(compose_cfg("eval", overrides, tmp_path))
    assert [r["eps"] for r in rows] == [0, 0.05, 0.3]
    assert rows[0]["adv_acc"] == rows[0]["purified_clean_acc"] > rows[1]["adv_acc"] > rows[2]["adv_acc"]
    assert rows[2]["adv_acc"] == 0 and rows[2]["seconds"] > 0
    assert all(r["linf_max"] <= r["eps"] + 1e-6 for r in rows)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"version": "fast"}, r"attack\.version='fast'"),
        ({"version": "custom"}, r"version=custom needs a non-empty list"),
        ({"version": "custom", "attacks": ["apgd-typo"]}, r"apgd-typo"),
        ({"attacks": ["apgd-ce"]}, r"only read with attack\.version=custom"),
        ({"backend": "art"}, r"set attack\.backend=native"),
        ({"max_iter": 10}, r"custom subset only .*set attack\.version=custom"),
        ({"version": "standard", "restarts": 1}, r"custom subset only"),
    ],
)
def test_bad_autoattack_settings_are_refused_when_built(settings, message):
    with pytest.raises(AdvPurifyError, match=message):
        AutoAttack(name="autoattack", eps=0.1, **settings)


@pytest.mark.parametrize("key", ["max_iter", "restarts"])
def test_a_cheaper_subset_needs_a_whole_count(key):
    with pytest.raises(AdvPurifyError, match=rf"attack\.{key}=0: it must be a whole number >= 1"):
        AutoAttack.check_settings({"version": "custom", "attacks": ["apgd-ce"], key: 0}, "attack")
