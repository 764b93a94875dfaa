"""Attack throughput (images/s) of the `native` and `art` backends on one model and one set of
real test images, beside the floor a k-step attack cannot beat: k forward + input-gradient
backward passes (measured here, not assumed).

    python benchmarks/attack_throughput.py --ckpt checkpoints/fmnist/fmnist_a.ckpt --n 512

Each attack runs at the config's settings (eps 0.1; BIM 10 and PGD 40 steps); the median of
`--repeats` runs is reported. Results go in benchmarks/RESULTS.md with the machine named.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from src.api import CONF_DIR
from src.checkpoints import load

STEPS = {"fgsm": 1, "bim": 10, "pgd": 40}


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_seconds(model, x, y, batch_size: int, repeats: int) -> float:
    """One forward + backward to the input over all images, in the attacks' batches."""

    def once() -> None:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            xb = xb.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xb), yb, reduction="sum"), xb)

    return median_seconds(once, repeats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--data", default="fmnist")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eps", type=float, default=0.1)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load(args.ckpt, "classifier", args.data).to(device).eval().requires_grad_(False)
    shape = tuple(model.hparams.input_shape)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("eval", overrides=[f"data={args.data}", f"data.image_size={shape[-1]}"])
        x, y = (t.to(device) for t in instantiate(cfg.data.module).test_tensors(args.n))
        floor = floor_seconds(model, x, y, 256, args.repeats)
        print(
            f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {device}, "
            f"{torch.get_num_threads()} threads, n={args.n}"
        )
        print(f"fwd+bwd floor: {args.n / floor:.0f} img/s per step")
        print("| attack | backend | img/s | x floor |")
        print("|---|---|---|---|")
        for name, steps in STEPS.items():
            for backend in ("native", "art"):
                attack_cfg = compose("eval", overrides=[f"attack={name}", f"attack.backend={backend}"]).attack
                attack = instantiate(attack_cfg, eps=args.eps)
                seconds = median_seconds(lambda attack=attack: attack(model, x, y), args.repeats)
                print(f"| {name} | {backend} | {args.n / seconds:.0f} | {seconds / (steps * floor):.2f} |")


if __name__ == "__main__":
    main()
