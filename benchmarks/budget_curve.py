"""The budget curve: robust accuracy against reconstruction error as a purifier trains.

    python benchmarks/budget_curve.py results/budget_curve benchmarks/fmnist/budget_curve

Reads the per-point results tables (<results>/e<k>/) that `scripts/budget_curve_fmnist.sh` and
`scripts/plateau_points.sh` write, and writes their rows together as one CSV, a markdown
table and a figure into the output folder. One row per purifier, epoch count, threat and eps:
clean accuracy through the purifier, the mean L1 per pixel and channel of its reconstruction of
clean images (0-1 scale) and accuracy under attack.
"""

from __future__ import annotations

import argparse
import csv
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from src.reporting.rows import read_rows
from src.runtime.yamlfiles import read_yaml

ROOT = Path(__file__).resolve().parents[1]
SIDE = 32  # the curves' runs are at data.image_size=32


@cache
def values_per_image(data: str) -> int:
    """clean_recon_l1_255 sums |x - purify(x)| over one image's channels x 32 x 32 on the 0-255 scale;
    the channel count is the dataset config's, so a CIFAR-10 error is not read as three times larger."""
    return read_yaml(ROOT / "conf" / "data" / f"{data}.yaml")["channels"] * SIDE * SIDE


def points(results: Path) -> list[dict[str, object]]:
    rows = []
    for folder in sorted(results.glob("e*"), key=lambda p: int(p.name[1:])):
        for row in read_rows(folder / "results.csv"):
            rows.append(
                {
                    "defense": row["defense"].removesuffix("_curve"),
                    "epochs": int(folder.name[1:]),
                    "threat": row["threat"],
                    "attack": row["attack"],
                    "eps": float(row["eps"]),
                    "n": int(row["n"]),
                    "purified_clean_acc": float(row["purified_clean_acc"]),
                    "recon_l1": float(row["clean_recon_l1_255"]) / values_per_image(row["data"]) / 255,
                    "adv_acc": float(row["adv_acc"]),
                }
            )
    return sorted(rows, key=lambda r: (r["defense"], r["threat"], r["eps"], r["epochs"]))


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| purifier | threat | attack, eps | epochs | n | clean, purified | recon L1/pixel | attacked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['defense']} | {r['threat']} | {r['attack']} {r['eps']:g} | {r['epochs']} | {r['n']} "
            f"| {100 * r['purified_clean_acc']:.1f} | {r['recon_l1']:.4f} | {100 * r['adv_acc']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def figure(rows: list[dict[str, object]], path: Path) -> None:
    threats = sorted({r["threat"] for r in rows})
    fig, axes = plt.subplots(1, len(threats), figsize=(5.5 * len(threats), 4), squeeze=False)
    # a colour per purifier and a line style per budget: past ten lines, colours alone repeat
    defenses = sorted({r["defense"] for r in rows})
    budgets = sorted({r["eps"] for r in rows})
    colours = plt.get_cmap("tab10")
    styles = ["-", "--", ":", "-."]
    for ax, threat in zip(axes[0], threats, strict=True):
        # one line per purifier and budget: points at different eps are not one curve
        for defense, eps in sorted({(r["defense"], r["eps"]) for r in rows}):
            series = [r for r in rows if (r["defense"], r["eps"], r["threat"]) == (defense, eps, threat)]
            ax.plot(
                [r["recon_l1"] for r in series],
                [100 * r["adv_acc"] for r in series],
                marker="o",
                color=colours(defenses.index(defense) % colours.N),
                linestyle=styles[budgets.index(eps) % len(styles)],
                label=f"{defense}, eps {eps:g}",
            )
            for r in series:
                ax.annotate(f"{r['epochs']}", (r["recon_l1"], 100 * r["adv_acc"]), fontsize=7)
        ax.set(
            xlabel="reconstruction L1 per pixel (clean, lower = more faithful)",
            ylabel="accuracy under attack (%)",
        )
        attacks = sorted({r["attack"] for r in rows})
        ax.set_title(f"{', '.join(attacks)}, {threat} threat (labels: epochs)")
        ax.invert_xaxis()
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    rows = points(args.results)
    if not rows:
        raise SystemExit(
            f"no rows under {args.results}/e*/results.csv: "
            "run scripts/budget_curve_fmnist.sh or scripts/plateau_points.sh first"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "curve.md").write_text(table(rows))
    figure(rows, args.out / "curve.png")
    print(table(rows))


if __name__ == "__main__":
    main()
