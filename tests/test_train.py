"""Training on a real Fashion-MNIST slice learns, publishes its checkpoint, and logs."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from pytorch_lightning.callbacks import ModelCheckpoint

from src.classifiers.module import ClassifierModule
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError
from src.train import train
from tests.conftest import compose_cfg


def val_loss(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return F.cross_entropy(module.eval()(x), y).item()


def test_smoke_train_lowers_the_loss_and_publishes(trained, tmp_path):
    cfg = compose_cfg("train", ["debug=smoke"], tmp_path)
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    x, y = datamodule.splits["val"][:]
    torch.manual_seed(0)
    untrained = ClassifierModule(
        "fmnist_a",
        "fmnist",
        (1, 28, 28),
        10,
        {"_target_": "src.classifiers.target.FmnistA"},
        {"_target_": "torch.optim.Adam", "_partial_": True},
    )
    model = checkpoints.load(trained["ckpt"], "classifier", "fmnist")
    assert val_loss(model, x, y) < 0.5 * val_loss(untrained, x, y)
    assert Path(trained["ckpt"]) == checkpoints.stable_path(
        trained["tmp"] / "checkpoints", "fmnist", "fmnist_a", (1, 28, 28)
    )
    assert trained["metrics"]["test/acc"] > 0.7


def test_wandb_offline_run_and_csv_log_are_written(tmp_path):
    cfg = compose_cfg("train", ["debug=smoke", "logger=wandb", "data.module.train_limit=128"], tmp_path)
    train(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb")), "no syncable offline W&B run"
    metrics = list((tmp_path / "run" / "csv").glob("version_*/metrics.csv"))
    assert metrics and "val/acc" in metrics[0].read_text()


def test_snapshots_keep_every_epoch_as_a_model_eval_loads(tmp_path):
    """callbacks=snapshots: a budget curve's points from one training, each a model of its name."""
    common = ["debug=smoke", "data.image_size=32", "data.module.train_limit=256", "defense=vqunet"]
    common += ["defense.width=8", "defense.train_inputs=clean", "trainer.max_epochs=2", "callbacks=snapshots"]
    with pytest.raises(AdvPurifyError, match=r"^callbacks.snapshots.dirpath has no value: set it"):
        train(compose_cfg("train", common, tmp_path))
    train(compose_cfg("train", [*common, f"callbacks.snapshots.dirpath={tmp_path}/snapshots"], tmp_path))
    files = sorted((tmp_path / "snapshots").glob("*.ckpt"))
    assert [f.name for f in files] == ["epoch000.ckpt", "epoch001.ckpt"]
    first, second = (checkpoints.load(f, "defense", "fmnist", (1, 32, 32), name="vqunet") for f in files)
    changed = [not torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters(), strict=True)]
    assert any(changed)  # the second epoch's model, not the first one again


def test_the_same_training_twice_gives_the_same_weights(tmp_path):
    """Same settings, same thread count: a retrained model is the same model (data order,
    augmentation, initialisation and codebook are seeded; VQUNet's codebook gradient was not
    deterministic on CPU while it indexed the codebook), so a rerun repeats its numbers."""
    common = [
        "debug=smoke",
        "data.image_size=32",
        "defense=vqunet",
        "defense.width=8",
        "defense.train_inputs=clean",
    ]

    def trained(run: str, limit: int) -> dict[str, torch.Tensor]:
        cfg = compose_cfg("train", [*common, f"data.module.train_limit={limit}"], tmp_path / run)
        return checkpoints.load(
            train(cfg)["checkpoint"], "defense", "fmnist", (1, 32, 32), name="vqunet"
        ).state_dict()

    first, second, other = trained("a", 256), trained("b", 256), trained("c", 128)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)  # other data: another model


def test_a_plateau_stops_the_training_before_its_ceiling(tmp_path):
    """callbacks=plateau: early stopping on the module's own metric, every epoch kept; a stop
    setting is part of what a published model was trained with."""
    common = ["debug=smoke", "data.image_size=32", "data.module.train_limit=128", "defense=vqunet"]
    common += ["defense.width=8", "defense.train_inputs=clean", "trainer.max_epochs=6", "callbacks=plateau"]
    common += [f"callbacks.snapshots.dirpath={tmp_path}/snapshots", "callbacks.early_stopping.patience=1"]
    train(compose_cfg("train", [*common, "callbacks.early_stopping.min_delta=1.0"], tmp_path))
    # epoch 0 sets the best; epoch 1 does not better it by 1.0, and patience 1 ends the fit
    assert sorted(p.name for p in (tmp_path / "snapshots").glob("*.ckpt")) == [
        "epoch000.ckpt",
        "epoch001.ckpt",
    ]
    with pytest.raises(AdvPurifyError, match=r"trained otherwise \(early_stopping.min_delta: 1.0 -> 0.0\)"):
        train(compose_cfg("train", common, tmp_path))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("patience=-1", r"patience=-1: it must be a whole number >= 0"),
        ("min_delta=-0.1", r"min_delta=-0.1: it must be"),
    ],
)
def test_a_bad_plateau_setting_stops_before_any_work(tmp_path, setting, message):
    overrides = ["debug=smoke", "callbacks=plateau", f"callbacks.snapshots.dirpath={tmp_path}/s"]
    with pytest.raises(AdvPurifyError, match=rf"^callbacks.early_stopping.{message}"):
        train(compose_cfg("train", [*overrides, f"callbacks.early_stopping.{setting}"], tmp_path))
    assert not (tmp_path / "s").exists()


class WorseningScore(pl.LightningModule):
    """A model whose validation score gets worse every epoch, so only its first epoch is ever
    the best; random inputs, because only the checkpoints' bookkeeping is under test."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.epochs_trained = 0

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def on_train_epoch_end(self) -> None:
        self.epochs_trained += 1

    def validation_step(self, batch, batch_idx) -> None:
        self.log("score", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_last_ckpt_follows_every_epoch_not_only_the_best(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from src.runtime.callbacks import LatestCheckpoint

    def fit(max_epochs: int, model: WorseningScore, ckpt_path: str | None = None) -> None:
        best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="score", mode="min")
        snapshots = ModelCheckpoint(dirpath=tmp_path / "snapshots", save_top_k=-1, every_n_epochs=1)
        trainer = pl.Trainer(
            max_epochs=max_epochs,
            callbacks=[best, snapshots, LatestCheckpoint(str(tmp_path))],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4)
        trainer.fit(model, loader, loader, ckpt_path=ckpt_path)
        assert torch.load(best.best_model_path, weights_only=False)["epoch"] == 0  # the first stays best

    fit(3, WorseningScore())
    last = tmp_path / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 2  # the latest epoch, not the best one
    resumed = WorseningScore()
    fit(4, resumed, str(last))
    assert resumed.epochs_trained == 1  # only the epoch still to go
    assert torch.load(last, weights_only=False)["epoch"] == 3
    assert not list(tmp_path.glob("last-v*.ckpt"))
