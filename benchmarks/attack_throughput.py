"""Attack throughput (images/s) of the `native` and `art` backends and of torchattacks, on one
model and one set of real test images, beside the floor a k-step attack cannot beat: k forward
+ input-gradient backward passes (measured here, not assumed).

    make bench            # installs torchattacks, then runs this with the defaults below
    python benchmarks/attack_throughput.py --ckpt checkpoints/fmnist/32px/fmnist_a.ckpt --n 512

Every attack runs at its config's settings (conf/attack/; FGSM/BIM/PGD at eps 0.1 L-inf, PGD-L2
at eps 1.0); torchattacks gets the same eps, step and step count. torchattacks has no CW-L-inf,
and its CW-L2 is a different algorithm (Adam at one fixed c, no binary search): it runs
binary_search_steps x max_iter Adam steps, the gradient steps our CW-L2 takes, at c = 1. It
runs in the configs' batches (`attack.batch_size`), as ours do.
Minimal-norm attacks (CW, DeepFool) run once on the first `--n-minimal` images: ART's CW-L-inf
works one image at a time. The success rate (share of images misclassified) is printed beside
each speed, so a fast attack that fails shows. The median of `--repeats` runs is reported.
Results go in benchmarks/RESULTS.md with the machine named.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from src.runtime.checkpoints import load
from src.runtime.configs import CONF_DIR

# label -> (attack config, overrides, gradient steps per image for the floor; None: data-dependent)
ATTACKS = {
    "FGSM": ("fgsm", ["+attack.eps=0.1"], 1),
    "BIM-10": ("bim", ["+attack.eps=0.1"], 10),
    "PGD-40": ("pgd", ["+attack.eps=0.1"], 40),
    "PGD-40 L2": ("pgd", ["+attack.eps=1.0", "attack.norm=2"], 40),
    "CW-Linf": ("cw", [], None),
    "CW-L2": ("cw_l2", [], None),
    "DeepFool": ("deepfool", [], None),
}


def torchattacks_twin(model, cfg) -> Callable | None:
    """The torchattacks attack at the same settings, or None where it has none."""
    try:
        import torchattacks
    except ImportError:
        return None
    a = cfg.attack
    if a.name == "fgsm":
        return torchattacks.FGSM(model, eps=a.eps)
    if a.name == "bim":
        return torchattacks.BIM(model, eps=a.eps, alpha=a.rel_step * a.eps, steps=a.max_iter)
    if a.name == "pgd":
        kind = torchattacks.PGD if str(a.norm) == "inf" else torchattacks.PGDL2
        return kind(model, eps=a.eps, alpha=a.rel_step * a.eps, steps=a.max_iter, random_start=True)
    if a.name == "cw_l2":
        steps = a.binary_search_steps * a.max_iter
        return torchattacks.CW(model, c=1, kappa=a.confidence, steps=steps, lr=a.learning_rate)
    if a.name == "deepfool":
        attack = torchattacks.DeepFool(model, steps=a.max_iter, overshoot=a.overshoot)
        return lambda x, y: attack(x, y)
    return None


def in_batches(attack: Callable, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat(
        [attack(xb, yb) for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)]
    )


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds over `repeats` runs, and the last run's output."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def floor_seconds(model, x, y, batch_size: int, repeats: int) -> float:
    """One forward + backward to the input over all images, in the attacks' batches."""

    def once() -> torch.Tensor:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            xb = xb.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xb), yb, reduction="sum"), xb)
        return x

    return timed(once, repeats)[0]


@torch.no_grad()
def success(model, x_adv, y) -> float:
    return (model(x_adv).argmax(1) != y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", default="checkpoints/fmnist/32px/fmnist_a.ckpt")
    parser.add_argument("--data", default="fmnist")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--n-minimal", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load(args.ckpt, "classifier", args.data).to(device).eval().requires_grad_(False)
    shape = tuple(model.hparams.input_shape)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        data_cfg = compose("eval", overrides=[f"data={args.data}", f"data.image_size={shape[-1]}"])
        x_all, y_all = (t.to(device) for t in instantiate(data_cfg.data.module).test_tensors(args.n))
        floor = floor_seconds(model, x_all, y_all, 256, args.repeats) / args.n
        print(
            f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {device}, "
            f"{torch.get_num_threads()} threads; fwd+bwd floor {1 / floor:.0f} img/s per step"
        )
        print(
            "| attack | n | native img/s (x floor) | ART img/s | torchattacks img/s | native vs ART "
            "| success native / ART / torchattacks |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, (name, overrides, steps) in ATTACKS.items():
            n, repeats = (args.n_minimal, 1) if steps is None else (args.n, args.repeats)
            x, y = x_all[:n], y_all[:n]
            cfgs = {
                b: compose("eval", overrides=[f"attack={name}", f"attack.backend={b}", *overrides])
                for b in ("native", "art")
            }
            runs = {b: partial(instantiate(c.attack), model, x, y) for b, c in cfgs.items()}
            twin = torchattacks_twin(model, cfgs["native"])
            if twin is not None:  # in the same batches as ours
                runs["torchattacks"] = partial(in_batches, twin, x, y, cfgs["native"].attack.batch_size)
            speed, rate = {}, {}
            for backend, run in runs.items():
                seconds, x_adv = timed(run, repeats)
                speed[backend], rate[backend] = n / seconds, success(model, x_adv, y)
            floor_note = f" ({1 / (speed['native'] * steps * floor):.2f})" if steps else ""
            others = [f"{speed[b]:.1f}" if b in speed else "-" for b in ("art", "torchattacks")]
            rates = " / ".join(
                f"{100 * rate[b]:.1f}%" if b in rate else "-" for b in ("native", "art", "torchattacks")
            )
            print(
                f"| {label} | {n} | {speed['native']:.1f}{floor_note} | {others[0]} | {others[1]} | "
                f"{speed['native'] / speed['art']:.1f}x | {rates} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
