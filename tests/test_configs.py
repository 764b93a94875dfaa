"""Every option of every config group composes, under both entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import get_class, get_object

from tests.conftest import CONF, ROOT, compose_cfg

GROUPS = [
    "data",
    "data/augment",
    "classifier",
    "defense",
    "attack",
    "threat",
    "trainer",
    "logger",
    "callbacks",
    "experiment",
    "debug",
    "launcher",
]
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]

PUBLIC = {
    "data": {"fmnist", "cifar10"},
    "classifier": {
        "fmnist_a",
        "fmnist_b",
        "fmnist_c",
        "cifar_a",
        "cifar_b",
        "cifar_c",
        "wrn28_10",
        "resnet20",
        "resnet32",
        "resnet62",
        "resnet110",
        "densenet50_12",
        "densenet50_24",
        "densenet100_12",
        "densenet100_24",
        "wrn8_8",
        "wrn16_8",
        "wrn16_10",
    },
    "defense": {"none", "vqunet", "vqunet_novq", "cyclegan", "sfl_vae", "vae", "defense_vae", "defense_gan"}
    | {f"cyclegan_skip{k}" for k in range(1, 5)}
    | {"vqunet_literal", "sfl_vae_literal", "cyclegan_literal"},
    "data/augment": {"voter"},
    "attack": {"fgsm", "bim", "pgd", "cw", "cw_l2", "deepfool"},
    "threat": {"classifier", "pipeline", "transfer"},
    "logger": {"wandb", "csv", "none"},
    "debug": {"smoke"},
    "launcher": {"joblib", "submitit_local", "slurm"},
}


@pytest.mark.parametrize("group", sorted(PUBLIC))
def test_public_names_exist(group):
    assert PUBLIC[group] <= {p.stem for p in (CONF / group).glob("*.yaml")}


@pytest.mark.parametrize("entry", ["train", "eval"])
@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(entry, group, option, tmp_path):
    cfg = compose_cfg(entry, [f"{group}={option}"], tmp_path)
    if group in ("data", "classifier", "defense", "attack", "threat"):
        assert cfg[group].name == option
    if group == "data":
        module = get_class(cfg.data.module._target_)
        assert (module.name, module.channels, module.num_classes) == (
            cfg.data.name,
            cfg.data.channels,
            cfg.data.num_classes,
        )
    for target in (
        cfg.trainer._target_,
        cfg.attack._target_,
        cfg.threat._target_,
        cfg.defense._target_,
    ):
        assert callable(get_object(target))  # every _target_ resolves to real code


def test_experiment_and_debug_override_together(tmp_path):
    cfg = compose_cfg("train", ["experiment=demo", "debug=smoke"], tmp_path)
    assert cfg.trainer.max_epochs == 1  # debug comes last
    assert cfg.data.module.train_limit == 640


def test_report_config_composes(tmp_path):
    cfg = compose_cfg("report", [], tmp_path)
    assert cfg.paths.results_file.endswith("results.csv")


def test_unknown_option_is_rejected_with_the_choices(tmp_path):
    with pytest.raises((MissingConfigException, ConfigCompositionException), match="fgsm"):
        compose_cfg("eval", ["attack=fgsmm"], tmp_path)


def test_cli_unknown_option_names_the_allowed_values():
    proc = subprocess.run(
        [sys.executable, "-m", "src.eval", "attack=fgsmm"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "Could not find 'attack/fgsmm'" in proc.stderr
    assert "pgd" in proc.stderr  # Hydra lists the available options


def test_cli_typo_in_a_key_is_rejected():
    proc = subprocess.run(
        [sys.executable, "-m", "src.eval", "eval.epz=[0.1]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "epz" in proc.stderr


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "attack").glob("*.yaml")))
def test_every_attack_config_builds_an_attack_that_attacks(option, tmp_path):
    """Built as eval builds it (a budget only where the attack takes one), on a 2-image batch."""
    import torch
    from hydra.utils import instantiate

    from src.attacks.base import Attack, attack_class

    cfg = compose_cfg("eval", [f"attack={option}"], tmp_path)
    budget = {} if attack_class(cfg.attack._target_).minimal_norm is not None else {"eps": 0.3}
    attack = instantiate(cfg.attack, **budget)
    assert isinstance(attack, Attack) and attack.name == option
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "defense").glob("*.yaml")))
def test_every_defense_config_builds_a_defense_that_purifies(option, tmp_path):
    """Each config builds its form of defense; a trained purifier's untrained net keeps the shape
    and range; a composite names how to build its parts."""
    import torch
    from hydra.utils import instantiate

    from src.defenses.base import CompositeDefense, Defense, TrainedPurifier, defense_class

    cfg = compose_cfg("train", [f"defense={option}", "data.image_size=32"], tmp_path)
    cls = defense_class(cfg.defense._target_)
    if issubclass(cls, CompositeDefense):
        assert cfg.defense.purifier in cls.parts_hint(cfg.defense)
        return
    shape = {"data": "fmnist", "input_shape": (1, 32, 32), "num_classes": 10}
    defense = (
        instantiate(cfg.defense, **shape) if issubclass(cls, TrainedPurifier) else instantiate(cfg.defense)
    )
    assert isinstance(defense, Defense) and defense.name == option
    if "restarts" in cfg.defense:  # Defense-GAN: a one-step search is enough for the shape
        defense.hparams.restarts, defense.hparams.steps = 1, 1
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        x_hat = defense.eval().purify(x)
    assert x_hat.shape == x.shape and x_hat.min() >= 0 and x_hat.max() <= 1
