"""Attack a trained purifier with outside libraries through `src.api.attackable`, beside this
framework's own adaptive number (`threat=pipeline`) at the same eps: the worked example of
docs/api.md.

Needs the demo's checkpoints (`make demo`: checkpoints/fmnist/32px/{fmnist_a,vqunet}.ckpt) and
torchattacks, which is not a dependency (its pins would move requests under wandb):
    .venv/bin/pip install --no-deps torchattacks==3.5.1
    .venv/bin/python examples/outside_attacks.py --n 100 --eps 0.1
"""

from __future__ import annotations

import argparse
import time

import torch
import torchattacks
from pyautoattack import AutoAttack

from src.api import attackable, composed, defended, load_classifier, load_defense, robust_accuracy
from src.runtime.errors import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="first n Fashion-MNIST test images")
    parser.add_argument("--eps", type=float, default=0.1, help="L-inf budget")
    parser.add_argument("--defense", default="vqunet")
    args = parser.parse_args()

    x, y = build(composed("eval", ["data.image_size=32"]).data.module).test_tensors(args.n)
    classifier = load_classifier("fmnist", "fmnist_a", input_shape=(1, 32, 32))
    purifier = load_defense("fmnist", args.defense)
    model = defended(classifier, purifier)  # to predict with
    target = attackable(classifier, purifier)  # to attack: the purifier's declared gradient, EOT

    def accuracy(x_adv: torch.Tensor) -> float:
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).float().mean().item()

    found: dict[str, tuple[float, float]] = {}

    def timed(label: str, attack) -> None:
        start = time.perf_counter()
        found[label] = (attack(), time.perf_counter() - start)

    # PGD with this framework's default settings (conf/attack/pgd.yaml: 40 steps of eps/30, random start)
    pgd = torchattacks.PGD(target, eps=args.eps, alpha=args.eps / 30, steps=40, random_start=True)
    timed("torchattacks PGD-40 on attackable()", lambda: accuracy(pgd(x, y)))
    auto = AutoAttack(target, norm="Linf", eps=args.eps, version="custom", attacks=["apgd-ce", "apgd-t"])
    timed(
        "AutoAttack APGD-CE + APGD-T on attackable()",
        lambda: accuracy(auto.run_standard_evaluation(x, y, batch_size=500)[0]),
    )
    timed(
        "src.api.robust_accuracy PGD-40, threat=pipeline",
        lambda: robust_accuracy(model, x, y, "pgd", [args.eps], "pipeline")[args.eps],
    )
    timed(
        "src.api.robust_accuracy PGD-40, threat=classifier (not adaptive)",
        lambda: robust_accuracy(model, x, y, "pgd", [args.eps], "classifier")[args.eps],
    )
    print(f"defense={args.defense}, fmnist_a, n={args.n}, L-inf eps={args.eps:g}, clean {accuracy(x):.3f}")
    for label, (acc, seconds) in found.items():
        print(f"  {label:<66} accuracy {acc:.3f}  ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
