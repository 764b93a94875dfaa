"""Which of the VAE settings the dissertation names buy fidelity.

    python benchmarks/vae_sweep.py --out benchmarks/fmnist/vae_sweep [--epochs 3] [--train-limit 10000]

Trains SFL-VAE (CPU size: latent 128) once per variant below, each under a name of its own, on
padded 32x32 Fashion-MNIST, and writes one row per variant to <out>/sweep.csv: its overrides,
the reconstruction MSE per pixel of its best validation epoch and on the test set, and seconds.
A rerun skips the variants already in the table. The target is a val MSE below 0.01; the
best variant is then trained longer, with a retrained target and voters, by
`LABEL=<variant> SETTING="<its overrides>" scripts/vae_setting_fmnist.sh`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from src.reporting.rows import read_rows
from src.train import train

CONF = Path(__file__).resolve().parents[1] / "conf"
VARIANTS = {  # one change at a time from the text's unweighted sum (KL weight 1), then together
    "default": ["defense.kl_weight=1.0"],
    "kl0.1": ["defense.kl_weight=0.1"],
    "kl0.01": ["defense.kl_weight=0.01"],
    "kl0.001": ["defense.kl_weight=0.001"],
    "prior3": ["defense.prior_std=3.0"],
    "width512": ["defense.decoder_width=512"],
    "sfl10": ["defense.sfl_weight=10.0"],
    "latent1024": ["defense.latent_dim=1024"],
    "kl0.01_width512": ["defense.kl_weight=0.01", "defense.decoder_width=512"],
}


def run(label: str, overrides: list[str], epochs: int, train_limit: int, out: Path) -> dict[str, object]:
    common = [
        f"paths.output_dir={out}/runs/{label}",  # composed here, not under a Hydra run
        "data=fmnist",
        "data.image_size=32",
        "defense=sfl_vae",
        "defense.latent_dim=128",
        f"defense.name=sfl_vae_sweep_{label}",
        f"trainer.max_epochs={epochs}",
        f"data.module.train_limit={train_limit}",
        "logger=none",
    ]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*common, *overrides])
    start = time.perf_counter()
    metrics = train(cfg)
    return {
        "variant": label,
        "overrides": " ".join(overrides),
        "epochs": epochs,
        "train_images": train_limit,
        "val_mse": round(float(metrics["val/recon"]), 5),
        "test_mse": round(float(metrics["test/recon"]), 5),
        "seconds": round(time.perf_counter() - start, 1),
        "checkpoint": metrics["checkpoint"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--only", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    table = args.out / "sweep.csv"
    done = {row["variant"] for row in read_rows(table)}
    for label in args.only:
        if label in done:
            continue
        row = run(label, VARIANTS[label], args.epochs, args.train_limit, args.out)
        args.out.mkdir(parents=True, exist_ok=True)
        fresh = not table.exists()
        with open(table, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if fresh:
                writer.writeheader()
            writer.writerow(row)
        print(row, flush=True)


if __name__ == "__main__":
    main()
