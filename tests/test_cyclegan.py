"""Defense-CycleGAN: manual optimization alternates, the cycle loss, the skip ablation, a real fit."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from src.defenses.components.unet import UNetGenerator
from src.defenses.cyclegan import DefenseCycleGAN, cycle_consistency_loss
from src.eval import evaluate
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError
from src.train import build_module, train
from tests.conftest import compose_cfg

# chapter 4's reading as written (defense=cyclegan_literal), under the default's name
LITERAL = ["defense.domains=same", "defense.identity_weight=0", "defense.train_inputs=clean"]


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


class StepRecorder(pl.Callback):
    """Snapshots both sides after each optimizer step, and which side had gradients then."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def on_train_start(self, trainer, module) -> None:
        self.events.append({"g": snapshot(module.generators), "d": snapshot(module.discriminators)})
        for side, optimizer in zip("gd", trainer.optimizers, strict=True):
            optimizer.register_step_post_hook(lambda *_, side=side: self._record(module, side))

    def _record(self, module, side: str) -> None:
        grads = {
            f"{name}_grad": [
                torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in nets.parameters()
            ]
            for name, nets in (("g", module.generators), ("d", module.discriminators))
        }
        self.events.append(
            {"side": side, "g": snapshot(module.generators), "d": snapshot(module.discriminators), **grads}
        )


def test_manual_optimization_alternates_and_never_touches_the_other_side(tmp_path):
    module = DefenseCycleGAN(
        name="cyclegan", data="fmnist", input_shape=(1, 28, 28), num_classes=10, width=4, disc_width=4
    )
    assert module.automatic_optimization is False
    x = torch.rand(16, 1, 28, 28)
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(16).long())
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    recorder = StepRecorder()
    trainer = pl.Trainer(
        max_steps=4, callbacks=[recorder], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, loader)  # global_step counts optimizer steps: 4 = two batches
    sides = [e["side"] for e in recorder.events[1:]]
    assert sides == ["g", "d", "g", "d"]
    for before, after in zip(recorder.events, recorder.events[1:], strict=False):
        stepped, other = after["side"], "d" if after["side"] == "g" else "g"
        assert not same(before[stepped], after[stepped]), f"the {stepped} step changed nothing"
        assert same(before[other], after[other]), f"the {stepped} step changed the {other} side"
        if "side" in before:  # the other side's gradients are the ones its own step left
            assert same(before[f"{other}_grad"], after[f"{other}_grad"]), (
                f"the {stepped} backward wrote gradients into the {other} side"
            )


def test_cycle_loss_is_the_mean_absolute_error_of_both_cycles():
    x = torch.zeros(2, 1, 4, 4)
    assert cycle_consistency_loss(x, x, x) == 0
    loss = cycle_consistency_loss(x, torch.full_like(x, 0.5), torch.full_like(x, -0.25))
    assert loss == pytest.approx(0.75)


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (1, 32), (3, 32)])
@pytest.mark.parametrize("dropped", [0, 1, 2, 3, 4])
def test_skip_ablations_keep_the_output_shape(channels, size, dropped):
    generator = UNetGenerator(channels, size, width=4, drop_skips=range(1, dropped + 1))
    assert generator.kept == [d > dropped for d in range(1, 5)]
    x = torch.rand(2, channels, size, size)
    out = generator(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_a_dropped_skip_doubles_the_layer_that_fed_it():
    full = UNetGenerator(1, 28, width=4)
    cyc_2 = UNetGenerator(1, 28, width=4, drop_skips=[1, 2])
    # up[i] feeds skip 4 - i (deepest first): the last two feed skips 2 and 1.
    widths = [[up[0].out_channels for up in g.up] for g in (full, cyc_2)]
    assert widths == [[32, 16, 8, 4], [32, 16, 16, 8]]
    assert [head.head[0].in_channels for head in (full, cyc_2)] == [8, 8]


def test_unknown_skip_is_a_clear_error():
    with pytest.raises(AdvPurifyError, match="skips"):
        UNetGenerator(1, 28, drop_skips=[5])


def test_ablation_configs_drop_growing_skip_sets(tmp_path):
    for k in range(1, 5):
        cfg = compose_cfg("train", [f"defense=cyclegan_skip{k}"], tmp_path)
        assert cfg.defense.name == f"cyclegan_skip{k}"
        assert list(cfg.defense.drop_skips) == list(range(1, k + 1))
        assert cfg.defense.width == compose_cfg("train", ["defense=cyclegan"], tmp_path).defense.width


def test_smoke_fit_on_fashion_mnist_lowers_the_cycle_loss(trained, tmp_path):
    overrides = [
        "debug=smoke",
        "defense=cyclegan",
        *LITERAL,
        "defense.width=8",
        "defense.disc_width=8",
        "defense.lr=0.002",
        "data.module.batch_size=32",
        "trainer.max_epochs=3",
    ]
    cfg = compose_cfg("train", overrides, tmp_path)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    x, _ = datamodule.splits["val"][:]
    pl.seed_everything(cfg.seed)
    untrained = build_module(cfg, datamodule).eval()
    metrics = train(cfg)
    assert all(math.isfinite(v) for k, v in metrics.items() if k != "checkpoint")
    purifier = checkpoints.load(metrics["checkpoint"], "defense", "fmnist", (1, 28, 28))
    with torch.no_grad():
        before = cycle_consistency_loss(x, untrained.g_a(untrained.g_b(x)), untrained.purify(x))
        after = cycle_consistency_loss(x, purifier.g_a(purifier.g_b(x)), purifier.purify(x))
        fidelity = F.l1_loss(purifier.purify(x), x)
    assert after < 0.6 * before
    assert fidelity == pytest.approx(metrics["val/recon"], rel=1e-4)

    evaluated = compose_cfg(
        "eval",
        [*overrides, f"defense_ckpt={metrics['checkpoint']}", "eval.eps=[0.3]", "attack=fgsm"],
        tmp_path,
    )
    evaluated.ckpt = trained["ckpt"]
    (row,) = evaluate(evaluated)
    assert row["defense"] == "cyclegan"
    # Table 4.1's unit: per-image sum over 784 pixels on the 0-255 scale.
    assert row["clean_recon_l1_255"] == pytest.approx(255 * 784 * fidelity.item(), rel=0.2)
    assert row["adv_recon_l1_255"] > row["clean_recon_l1_255"]


def test_the_identity_term_pulls_each_generator_towards_leaving_its_own_domain_alone():
    """Without cycle loss, only the identity term ties G_B's output to its input's content: with
    it, G_B keeps a real image far closer to itself than the GAN loss alone does."""
    from tests.test_augment import real_images

    x = real_images(64)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, torch.zeros(64).long()), batch_size=16
    )
    distance = {}
    for weight in (0.0, 10.0):
        pl.seed_everything(0)
        module = DefenseCycleGAN(
            name="cyclegan", data="fmnist", input_shape=(1, 28, 28), num_classes=10, width=4,
            disc_width=4, lr=2e-3, cycle_weight=0.0, identity_weight=weight,
        )  # fmt: skip
        trainer = pl.Trainer(
            max_epochs=12, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=None,
        )  # fmt: skip
        trainer.fit(module, loader)
        with torch.no_grad():
            distance[weight] = F.l1_loss(module.g_b.eval()(x), x).item()
    assert distance[10.0] < 0.5 * distance[0.0]


def test_a_setting_added_at_its_earlier_value_leaves_finished_work_done(tmp_path):
    """identity_weight=0 is what CycleGAN did before the setting existed: models and rows
    fingerprinted without it stay done; any other value is a different model."""
    from omegaconf import open_dict

    from src.evaluation.fingerprints import run_fingerprint
    from src.train import training_fingerprint

    def stamps(*overrides: str, drop: bool = False) -> tuple[str, str]:
        train_cfg = compose_cfg("train", ["defense=cyclegan_literal", *overrides], tmp_path)
        eval_cfg = compose_cfg("eval", ["defense=cyclegan_literal", *overrides], tmp_path)
        if drop:  # the config as it was before the setting was added
            for cfg in (train_cfg, eval_cfg):
                with open_dict(cfg):
                    del cfg.defense["identity_weight"]
        shape = (1, 28, 28)
        return training_fingerprint(train_cfg, "fmnist", shape), run_fingerprint(
            eval_cfg, "fmnist", "c", shape
        )[0]

    assert stamps() == stamps(drop=True)
    changed = stamps("defense.identity_weight=5")
    assert changed[0] != stamps()[0] and changed[1] != stamps()[1]
