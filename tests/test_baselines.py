"""Defense-VAE and Defense-GAN (SPEC 3.4): crafting per image, the z search, WGAN-GP steps, real fits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from src.api import build_defense
from src.defenses.components.wgan import Critic, Generator, gradient_penalty
from src.defenses.defense_gan import DefenseGAN
from src.defenses.defense_vae import DefenseVAE
from src.eval import evaluate
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError
from src.train import build_module, train
from tests.conftest import compose_cfg, install_target

SHAPE = {"data": "fmnist", "input_shape": (1, 28, 28), "num_classes": 10}
ATTACKS = {
    "fgsm": {"_target_": "src.attacks.fgsm.FGSM", "name": "fgsm"},
    "pgd": {"_target_": "src.attacks.pgd.PGD", "name": "pgd", "max_iter": 3, "rel_step": 0.8},
}
CW = {"_target_": "src.attacks.cw.CWLinf", "name": "cw"}


@pytest.fixture(scope="module")
def with_target(trained, tmp_path_factory):
    """A tmp project whose checkpoints hold the shared fmnist_a."""
    tmp = tmp_path_factory.mktemp("baselines")
    install_target(trained, tmp)
    return tmp


def run(tmp, name: str, *overrides: str) -> dict:
    return train(compose_cfg("train", ["debug=smoke", f"paths.output_dir={tmp}/{name}", *overrides], tmp))


# Defense-VAE


def test_defense_vae_attacks_each_image_by_its_own_attack_and_budget(with_target):
    hp = {"latent_dim": 16, "eps": [0.0, 0.1, 0.3], "attacks": ATTACKS}
    path = str(with_target / "checkpoints" / "fmnist" / "28px" / "fmnist_a.ckpt")
    vae = DefenseVAE(**SHAPE, name="defense_vae", attacker=path, **hp)
    vae.on_fit_start()
    x = torch.rand(12, 1, 28, 28)
    y = torch.randint(10, (12,))
    spec = vae.inputs.specs(12, x.device, train=False)
    assert torch.equal(spec, torch.arange(12) % 6)  # fgsm 0/.1/.3, pgd 0/.1/.3, twice
    x_adv = vae.training_inputs(x, y, train=False)
    linf = (x_adv - x).flatten(1).abs().max(1).values
    budget = torch.tensor(hp["eps"])[spec % 3]
    assert torch.all(linf <= budget + 1e-6)
    assert torch.equal(x_adv[budget == 0], x[budget == 0])
    fgsm = spec // 3 == 0
    assert torch.allclose(linf[fgsm & (budget > 0)], budget[fgsm & (budget > 0)])  # FGSM fills its ball


def test_defense_vae_rejects_unknown_attacks_and_budgets():
    with pytest.raises(AdvPurifyError, match="attacks"):
        DefenseVAE(**SHAPE, name="d", attacker="a.ckpt", attacks={"cw": CW})
    with pytest.raises(AdvPurifyError, match="eps"):
        DefenseVAE(**SHAPE, name="d", attacker="a.ckpt", attacks=ATTACKS, eps=[0.1, 2.0])


def test_defense_vae_trains_on_attacked_inputs_only():
    with pytest.raises(AdvPurifyError, match=r"by definition, not train_inputs=clean: use defense=vae"):
        DefenseVAE(**SHAPE, name="d", attacker="a.ckpt", attacks=ATTACKS, train_inputs="clean")


def test_defense_vae_without_its_target_says_to_train_it(tmp_path):
    with pytest.raises(
        AdvPurifyError,
        match=r"train it with `python -m src\.train data=fmnist data\.image_size=28 classifier=fmnist_a`",
    ):
        run(tmp_path, "dvae", "defense=defense_vae", "defense.latent_dim=16")


def test_defense_vae_smoke_fit_learns_to_undo_attacks_then_evaluates(with_target):
    tmp = with_target
    overrides = [
        "defense=defense_vae",
        "defense.latent_dim=64",
        "defense.attacks.bim.max_iter=3",
        "defense.attacks.pgd.max_iter=3",
        "trainer.max_epochs=3",
    ]
    metrics = run(tmp, "dvae", *overrides, "data.module.batch_size=32")
    vae = checkpoints.load(metrics["checkpoint"], "defense", "fmnist", (1, 28, 28))
    assert isinstance(vae, DefenseVAE) and vae.inputs.frozen is None  # the target is not in its checkpoint
    assert metrics["val/recon"] < 0.12  # measured: 0.17 after one epoch, 0.09 after three
    cfg = compose_cfg("eval", ["debug=smoke", "defense=defense_vae", "attack=fgsm", "eval.eps=[0.1]"], tmp)
    (row,) = evaluate(cfg)
    assert row["defense"] == "defense_vae" and row["n"] == 128
    # trained to map attacked images to clean ones: the attack barely moves its reconstruction
    assert row["adv_recon_l1_255"] < 1.2 * row["clean_recon_l1_255"]


# Defense-GAN


def test_generator_and_critic_shapes_and_a_side_not_divisible_by_4_is_an_error():
    for size in (28, 32):
        g, c = Generator(3, size, z_dim=8, width=4), Critic(3, size, width=4)
        x = g(torch.randn(5, 8))
        assert x.shape == (5, 3, size, size) and x.min() >= 0 and x.max() <= 1
        assert c(x).shape == (5,)
    with pytest.raises(AdvPurifyError, match="divisible by 4"):
        Generator(1, 30)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    class Slope(torch.nn.Module):
        def forward(self, x):  # ||grad|| = 1 everywhere
            return x.flatten(1).sum(1) / x[0].numel() ** 0.5

    real, fake = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    assert gradient_penalty(Slope(), real, fake).item() == pytest.approx(0, abs=1e-10)
    assert gradient_penalty(lambda x: 3 * Slope()(x), real, fake).item() == pytest.approx(4)


def test_the_z_search_lowers_the_distance_to_the_input_over_its_steps():
    torch.manual_seed(0)
    gan = DefenseGAN(**SHAPE, name="defense_gan", z_dim=16, width=8).eval()
    with torch.no_grad():
        x = gan.sample(6)  # in the range of G, so the search can reach it
    x_hat, history = gan.search_errors(x, restarts=3, steps=60)
    assert history.shape == (61, 6) and x_hat.shape == x.shape
    assert torch.all(history[-1] < 0.5 * history[0])
    assert torch.allclose(history[-1], (x_hat - x).pow(2).flatten(1).sum(1))
    more, _ = gan.search_errors(x, restarts=3, steps=120)
    assert (more - x).pow(2).sum() < (x_hat - x).pow(2).sum()  # L is a real knob
    assert all(p.grad is None for p in gan.parameters())  # the search never trains G


def test_purify_runs_under_inference_mode_and_keeps_the_shape():
    gan = DefenseGAN(**SHAPE, name="defense_gan", z_dim=8, width=4, restarts=2, steps=3).eval()
    with torch.inference_mode():
        x_hat = gan.purify(torch.rand(4, 1, 28, 28))
    assert x_hat.shape == (4, 1, 28, 28) and gan.stochastic and gan.gradient == "identity"


def test_defense_gan_smoke_fit_then_eval_on_real_data(with_target):
    tmp = with_target
    gan = ["defense=defense_gan", "defense.width=16", "defense.critic_width=16", "defense.val_steps=10"]
    fast = ["defense.n_critic=1", "defense.lr=0.0005", "data.module.train_limit=3000"]
    cfg = compose_cfg("train", ["debug=smoke", *gan, *fast], tmp)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    x, _ = datamodule.splits["val"][:]
    torch.manual_seed(0)
    untrained = build_module(cfg, datamodule).eval()
    before = F.mse_loss(untrained.search_errors(x, 2, 10)[0], x).item()
    metrics = run(tmp, "gan", *gan, *fast, "trainer.max_epochs=3")
    assert metrics["val/recon"] < 0.8 * before  # G's range moved towards the data
    search = ["defense.restarts=2", "defense.steps=20"]
    cfg = compose_cfg("eval", ["debug=smoke", "defense=defense_gan", *search, "eval.eps=[0.3]"], tmp)
    loaded = build_defense(cfg.defense, "fmnist", None, cfg.paths.checkpoint_dir, (1, 28, 28))
    assert (loaded.hparams.restarts, loaded.hparams.steps) == (2, 20)  # the config steers the search
    (row,) = evaluate(cfg)
    x_test, _ = instantiate(cfg.data.module).test_tensors(row["n"])
    with torch.no_grad():
        untrained_l1 = (
            255 * (untrained.search_errors(x_test, 2, 20)[0] - x_test).abs().flatten(1).sum(1).mean()
        )
    assert row["clean_recon_l1_255"] < 0.9 * untrained_l1.item()  # eval searched the trained generator


def test_a_search_without_steps_is_a_clear_error():
    with pytest.raises(AdvPurifyError, match=r"^defense.steps=0: it must be a whole number >= 1$"):
        DefenseGAN(**SHAPE, name="defense_gan", z_dim=8, width=4, steps=0)
