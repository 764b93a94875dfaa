"""The public API loads trained models by name and composes purify-then-classify."""

from __future__ import annotations

import pytest
import torch

from src.api import defended, load_classifier, load_defense
from src.runtime.errors import AdvPurifyError


def test_defended_none_equals_the_classifier(trained):
    classifier = load_classifier("fmnist", "fmnist_a", checkpoint_dir=trained["tmp"] / "checkpoints")
    defense = load_defense("fmnist", "none")
    model = defended(classifier, defense)
    x = torch.rand(8, 1, 28, 28)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(defense.purify(x), x)
    assert torch.equal(model(x), classifier(x))


def test_unknown_defense_lists_the_choices():
    with pytest.raises(AdvPurifyError, match=r"unknown defense 'vqunett'.*none"):
        load_defense("fmnist", "vqunett")


def test_a_config_built_on_another_resolves_its_defaults(tmp_path):
    # cyclegan_skip2.yaml only overrides cyclegan.yaml: the API must still find its class and name.
    with pytest.raises(AdvPurifyError, match=r"no defense checkpoint .*defense=cyclegan_skip2"):
        load_defense("fmnist", "cyclegan_skip2", checkpoint_dir=tmp_path)


def test_wrong_dataset_checkpoint_is_refused(trained):
    with pytest.raises(AdvPurifyError, match="trained on data=fmnist"):
        load_classifier("cifar10", "fmnist_a", ckpt=trained["ckpt"])


def test_corrupt_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AdvPurifyError, match="refusing to unpickle it"):
        load_classifier("fmnist", "fmnist_a", ckpt=bad)
