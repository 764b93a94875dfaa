"""`defense.train_inputs`: every trained purifier can learn from clean, attacked or mixed inputs,
crafted on the fly against the frozen target, with its loss against the clean image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from src.defenses.components.attacked_inputs import AttackedInputs
from src.defenses.cyclegan import DefenseCycleGAN
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError, build
from src.train import train
from tests.conftest import compose_cfg, install_target

# batch_size below the 16 images: per-image budgets must stay aligned with their images
PGD = {
    "pgd": {"_target_": "src.attacks.pgd.PGD", "name": "pgd", "max_iter": 3, "rel_step": 0.5, "batch_size": 4}
}


@pytest.fixture(scope="module")
def target(trained, tmp_path_factory):
    """A tmp project whose checkpoints hold the shared 28px fmnist_a, and real test images."""
    tmp = tmp_path_factory.mktemp("train_inputs")
    path = install_target(trained, tmp)
    cfg = compose_cfg("train", ["debug=smoke"], tmp)
    x, y = build(cfg.data.module).test_tensors(16)
    return {"tmp": tmp, "path": str(path), "x": x, "y": y}


def crafted(target, mode: str, train: bool, eps=(0.1, 0.3)) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = AttackedInputs(mode, target["path"], PGD, eps)
    inputs.start("fmnist", (1, 28, 28), torch.device("cpu"))
    torch.manual_seed(0)
    x_in = inputs(target["x"], target["y"], train)
    return x_in, (x_in - target["x"]).flatten(1).abs().max(1).values


def test_adversarial_inputs_attack_every_image_within_its_budget(target):
    _, linf = crafted(target, "adversarial", train=False)
    budget = torch.tensor([0.1, 0.3])[torch.arange(16) % 2]  # validation cycles through the grid
    assert torch.all(linf > 0) and torch.all(linf <= budget + 1e-6)


def test_mixed_inputs_keep_every_other_image_clean_in_validation_and_about_half_in_training(target):
    x_in, linf = crafted(target, "mixed", train=False)
    assert torch.equal(x_in[1::2], target["x"][1::2]) and torch.all(linf[::2] > 0)
    _, linf = crafted(target, "mixed", train=True)
    assert 0 < (linf == 0).sum() < 16


def test_clean_inputs_are_the_images_themselves_and_need_no_target(target):
    inputs = AttackedInputs("clean", None, {}, [])
    inputs.start("fmnist", (1, 28, 28), torch.device("cpu"))
    assert inputs(target["x"], target["y"], train=True) is target["x"]


@pytest.mark.parametrize(
    ("mode", "attacks", "eps", "message"),
    [
        ("noisy", PGD, [0.1], r"train_inputs='noisy': choose one of \['clean', 'adversarial', 'mixed'\]"),
        ("mixed", {}, [0.1], r"train_inputs=mixed needs an attack in defense.attacks"),
        ("adversarial", PGD, [1.5], r"defense.eps=\[1.5\]: give training budgets in \[0, 1\]"),
        ("adversarial", {"cw": {"_target_": "src.attacks.cw.CWLinf"}}, [0.1], "minimal-norm attack"),
        ("adversarial", {"x": {"_target_": "os.system"}}, [0.1], "not one of this project's attacks"),
    ],
)
def test_bad_training_inputs_are_refused(mode, attacks, eps, message):
    with pytest.raises(AdvPurifyError, match=message):
        AttackedInputs(mode, "a.ckpt", attacks, eps)


def test_a_bad_train_inputs_value_stops_training_at_startup(tmp_path):
    cfg = compose_cfg("train", ["debug=smoke", "defense=sfl_vae", "defense.train_inputs=noisy"], tmp_path)
    with pytest.raises(AdvPurifyError, match=r"defense\.train_inputs='noisy': it must be one of"):
        train(cfg)


@pytest.mark.parametrize(
    ("defense", "overrides"),
    [
        ("sfl_vae", ["defense.latent_dim=16"]),
        ("cyclegan", ["defense.width=8", "defense.disc_width=8", "defense.max_width=16", "defense.depth=2"]),
    ],
)
def test_purifiers_train_on_attacked_inputs_and_log_both_errors(target, defense, overrides):
    tmp = target["tmp"]
    run = [
        "debug=smoke",
        f"defense={defense}",
        "defense.train_inputs=mixed",
        "defense.attacks.pgd.max_iter=2",
        "data.module.train_limit=256",
        f"paths.output_dir={tmp}/{defense}",
        *overrides,
    ]
    metrics = train(compose_cfg("train", run, tmp))
    assert metrics["test/recon"] > 0 and metrics["test/clean_recon"] > 0  # on attacked and on clean inputs
    module = checkpoints.load(metrics["checkpoint"], "defense", "fmnist", (1, 28, 28))
    assert module.hparams.train_inputs == "mixed" and module.inputs.frozen is None  # no target inside


def test_vqunet_trains_on_adversarial_inputs(trained32, tmp_path):
    target = tmp_path / "checkpoints" / "fmnist" / "32px" / "fmnist_a.ckpt"
    target.parent.mkdir(parents=True)
    shutil.copyfile(trained32["ckpt"], target)
    run = [
        "debug=smoke",
        "data.image_size=32",
        "defense=vqunet",
        "defense.width=8",
        "defense.train_inputs=adversarial",
        "defense.attacks.pgd.max_iter=2",
        "data.module.train_limit=256",
    ]
    metrics = train(compose_cfg("train", run, tmp_path))
    assert metrics["test/recon"] > 0 and metrics["test/clean_recon"] > 0


def test_a_model_trained_otherwise_never_replaces_the_published_one(target, tmp_path):
    install_target({"ckpt": target["path"]}, tmp_path)
    common = ["debug=smoke", "defense=sfl_vae", "defense.latent_dim=8", "data.module.train_limit=128"]
    common += ["defense.train_inputs=clean"]
    first = Path(
        train(compose_cfg("train", [*common, f"paths.output_dir={tmp_path}/a"], tmp_path))["checkpoint"]
    )
    held = first.read_bytes()
    mixed = [*common, "defense.train_inputs=mixed", "defense.attacks.pgd.max_iter=1"]
    with pytest.raises(AdvPurifyError, match=r"trained otherwise \(.*train_inputs: clean -> mixed"):
        train(compose_cfg("train", [*mixed, f"paths.output_dir={tmp_path}/b"], tmp_path))
    assert first.read_bytes() == held
    older = torch.load(first, weights_only=True)  # as saved before train_inputs existed
    for key in ("train_inputs", "attacker", "attacks", "eps", "rec_weight", "decoder_width"):
        del older["hyper_parameters"][key]
    torch.save(older, first)
    held = first.read_bytes()
    with pytest.raises(AdvPurifyError, match=r"train_inputs: clean -> mixed"):  # its default counts
        train(compose_cfg("train", [*mixed, f"paths.output_dir={tmp_path}/d"], tmp_path))
    again = train(compose_cfg("train", [*common, f"paths.output_dir={tmp_path}/e"], tmp_path))
    assert Path(again["checkpoint"]) == first  # retrained as it was: replaced in place
    held = first.read_bytes()
    renamed = [*mixed, "defense.name=sfl_vae_mixed", f"paths.output_dir={tmp_path}/c"]
    second = train(compose_cfg("train", renamed, tmp_path))  # the fix the message names
    assert Path(second["checkpoint"]).name == "sfl_vae_mixed.ckpt" and first.read_bytes() == held


def test_cyclegan_domain_reading_needs_attacked_inputs():
    common = dict(name="cyclegan", data="fmnist", input_shape=(1, 28, 28), num_classes=10, width=4)
    with pytest.raises(
        AdvPurifyError, match=r"needs attacked images for domain A: set defense.train_inputs="
    ):
        DefenseCycleGAN(**common, domains="attacked_clean")
    with pytest.raises(
        AdvPurifyError, match=r"defense.domains='noisy': it must be one of \['same', 'attacked_clean'\]"
    ):
        DefenseCycleGAN(**common, domains="noisy")


def test_cyclegan_attacked_clean_reading_judges_each_domain_and_purifies_with_g_b(target):
    tmp = target["tmp"]
    run = [
        "debug=smoke",
        "defense=cyclegan",
        "defense.name=cyclegan_domains",
        "defense.domains=attacked_clean",
        "defense.train_inputs=adversarial",
        "defense.attacks.pgd.max_iter=2",
        "defense.width=8",
        "defense.disc_width=8",
        "defense.max_width=16",
        "defense.depth=2",
        "data.module.train_limit=256",
        f"paths.output_dir={tmp}/cyclegan_domains",
    ]
    metrics = train(compose_cfg("train", run, tmp))
    assert metrics["test/recon"] > 0 and metrics["test/clean_recon"] > 0
    module = checkpoints.load(metrics["checkpoint"], "defense", "fmnist", (1, 28, 28)).eval()
    assert module.hparams.domains == "attacked_clean"
    x, x_in = target["x"], crafted(target, "adversarial", train=False)[0]
    with torch.no_grad():
        domain_a, domain_b, fake_a, fake_b, cycle = module.domain_pass(x, x_in)
        assert torch.equal(domain_a, x_in) and torch.equal(domain_b, x)  # D_A sees attacked, D_B clean
        assert torch.allclose(fake_a, module.g_a(x)) and torch.allclose(fake_b, module.g_b(x_in))
        back_to_a = torch.nn.functional.l1_loss(module.g_a(fake_b), x_in)
        assert cycle == pytest.approx((torch.nn.functional.l1_loss(module.g_b(fake_a), x) + back_to_a).item())
        assert torch.equal(module.purify(x_in), module.g_b(x_in))  # one pass, out of domain A
