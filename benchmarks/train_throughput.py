"""Training throughput (images/s) of any trainable module, on real data, through Lightning.

    python benchmarks/train_throughput.py defense=vqunet data.image_size=32 defense.width=32
    python benchmarks/train_throughput.py defense=cyclegan defense.width=16 --batches 30

Arguments are `src.train` overrides. Times whole training batches (forward, backward,
optimizer steps, callbacks such as VQUNet's EMA update) after `--warmup` batches, and
reports the median, so one slow batch does not skew it. Results go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from src.train import build_module

CONF = Path(__file__).resolve().parents[1] / "conf"


class BatchTimer(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.sizes: list[int] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self.start)
        self.sizes.append(len(batch[1]))


def bench_trainer(accelerator: str, batches: int, callback: pl.Callback) -> pl.Trainer:
    """One epoch of `batches` training batches and nothing else: no validation, checkpoints,
    logger or progress output, so only training is timed."""
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", *args.overrides])
    pl.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data.module)
    module = build_module(cfg, datamodule)
    timer = BatchTimer()
    bench_trainer(cfg.trainer.accelerator, args.warmup + args.batches, timer).fit(
        module, datamodule=datamodule
    )
    seconds = statistics.median(timer.seconds[args.warmup :])
    batch = timer.sizes[args.warmup]
    params = sum(p.numel() for p in module.parameters())
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print(
        f"{' '.join(args.overrides)}: {params / 1e6:.1f} M parameters, batch {batch}, "
        f"{seconds * 1000:.0f} ms/batch, {batch / seconds:.0f} images/s "
        f"({device}, {torch.get_num_threads()} threads, torch {torch.__version__})"
    )


if __name__ == "__main__":
    main()
