"""Shared fixtures: configs composed as the CLI would, on real data, writing into tmp dirs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("ADVPURIFY_DATA", str(SHARED_DATA))
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(max(1, os.cpu_count() or 1))


def compose_cfg(config_name: str, overrides: list[str], tmp: Path) -> DictConfig:
    """Compose like `python -m src.<config_name> ...`, with every output under `tmp`."""
    paths = [
        f"paths.output_dir={tmp}/run",
        f"paths.checkpoint_dir={tmp}/checkpoints",
        f"paths.results_dir={tmp}/results",
        f"paths.report_dir={tmp}/results",
        f"paths.zoo_dir={tmp}/zoo",
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        quiet = [] if config_name == "report" else ["logger=none"]
        return compose(config_name, overrides=[*quiet, *paths, *overrides])


def install_target(trained: dict, tmp: Path) -> Path:
    """Put the shared fmnist_a (trained once per pytest run) where `tmp`'s runs look for it by name."""
    target = tmp / "checkpoints" / "fmnist" / "28px" / "fmnist_a.ckpt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained["ckpt"], target)
    return target


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """fmnist_a trained once per pytest run on 6,000 real images (2 short epochs, ~75-80%)."""
    from src.train import train

    tmp = tmp_path_factory.mktemp("trained")
    overrides = ["debug=smoke", "data.module.train_limit=6000", "trainer.max_epochs=2"]
    metrics = train(compose_cfg("train", overrides, tmp))
    return {"tmp": tmp, "ckpt": metrics["checkpoint"], "metrics": metrics}


def train_target32(tmp: Path) -> dict:
    """A padded-32x32 fmnist_a and a small VQUNet, trained on 3,000 real images.

    The classifier trains in float64: its float32 weights then come out the same on every x86
    CPU (checked with ATEN_CPU_CAPABILITY=avx2 against avx512, where float32 training moved a
    weight by 0.026), so the golden grid of test_eval_regression attacks the same model on CI
    as where its rows were written."""
    from src.train import train

    common = ["debug=smoke", "data.image_size=32", "data.module.train_limit=3000"]
    fp64 = ["trainer.max_epochs=2", "trainer.precision=64-true"]
    classifier = train(compose_cfg("train", [*common, *fp64], tmp))
    vq = ["defense=vqunet", "defense.width=16", "defense.lr=0.001", "defense.train_inputs=clean"]
    defense = train(compose_cfg("train", [*common, *vq, f"paths.output_dir={tmp}/run_vq"], tmp))
    return {
        "tmp": tmp,
        "ckpt": classifier["checkpoint"],
        "defense_ckpt": defense["checkpoint"],
        "defense": defense,
    }


@pytest.fixture(scope="session")
def trained32(tmp_path_factory) -> dict:
    """`train_target32`, once per pytest run."""
    return train_target32(tmp_path_factory.mktemp("trained32"))
