"""What Lightning costs: training throughput of a classifier through `src.train`'s Trainer and
module against a plain PyTorch loop over the same network, optimizer, data loader and batch.

    python benchmarks/lightning_overhead.py classifier=fmnist_a data.image_size=32
    python benchmarks/lightning_overhead.py data=cifar10 classifier=cifar_a --batches 60

Arguments are `src.train` overrides. Each side runs `--warmup` batches, then is timed over
`--batches` consecutive batches, wall clock from the first timed batch's start to the last
one's end: the loop's own work between batches (data loading, hooks, logging, metrics) counts.
Sides alternate for `--repeats` rounds and the median round is kept, so a noisy neighbour
hits both. Results go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from train_throughput import bench_trainer  # benchmarks/, on the path when run as a script

from src.train import build_module

CONF = Path(__file__).resolve().parents[1] / "conf"


class Clock(pl.Callback):
    """Wall time from the start of batch `first` to the end of the last batch."""

    def __init__(self, first: int) -> None:
        self.first, self.start, self.end = first, 0.0, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.first:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.end = time.perf_counter()


def lightning_seconds(cfg, datamodule, warmup: int, batches: int) -> float:
    module = build_module(cfg, datamodule)
    clock = Clock(warmup)
    bench_trainer(cfg.trainer.accelerator, warmup + batches, clock).fit(module, datamodule=datamodule)
    return clock.end - clock.start


def plain_seconds(cfg, datamodule, warmup: int, batches: int) -> float:
    """The same network and optimizer (`configure_optimizers`), trained by hand."""
    module = build_module(cfg, datamodule)
    net = module.net.train()
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
    optimizer = optimizer[0] if isinstance(optimizer, (list, tuple)) else optimizer
    loader = datamodule.train_dataloader()
    start = 0.0
    for index, (x, y) in enumerate(itertools.islice(loader, warmup + batches)):
        if index == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", "trainer.accelerator=cpu", *args.overrides])
    datamodule = instantiate(cfg.data.module)
    datamodule.setup("fit")
    rounds = {"lightning": [], "plain": []}
    for _ in range(args.repeats):
        pl.seed_everything(cfg.seed)
        rounds["plain"].append(plain_seconds(cfg, datamodule, args.warmup, args.batches))
        pl.seed_everything(cfg.seed)
        rounds["lightning"].append(lightning_seconds(cfg, datamodule, args.warmup, args.batches))
    images = args.batches * datamodule.batch_size
    rate = {side: images / statistics.median(seconds) for side, seconds in rounds.items()}
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    versions = f"torch {torch.__version__}, Lightning {pl.__version__}"
    print(
        f"{' '.join(args.overrides)}: batch {datamodule.batch_size}, {args.batches} batches x "
        f"{args.repeats} rounds; plain {rate['plain']:.0f} img/s, Lightning {rate['lightning']:.0f} img/s, "
        f"Lightning overhead {100 * (rate['plain'] / rate['lightning'] - 1):+.1f}% ({machine}, {versions})"
    )


if __name__ == "__main__":
    main()
