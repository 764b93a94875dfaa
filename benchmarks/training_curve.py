"""A training's validation curve, one row per epoch, from the CSV logs Lightning wrote for it
(`logger=csv`: outputs/train/<time>/csv/version_0/metrics.csv; a resumed training logs on in a
folder of its own, so give every one in order), so a plateau can be shown from a committed file:

    python benchmarks/training_curve.py <metrics.csv> [<metrics.csv> ...] <curve.csv> [--name NAME]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def curve(metrics: Path) -> list[dict[str, str]]:
    """The rows of `metrics` that hold validation numbers, keyed by epoch (the last one wins)."""
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = sorted({c for r in rows for c, v in r.items() if c.startswith("val/") and v})
    by_epoch: dict[int, dict[str, str]] = {}
    for row in rows:
        if any(row.get(c) for c in columns) and row.get("epoch"):
            kept = by_epoch.setdefault(int(float(row["epoch"])), {})
            kept |= {c: row[c] for c in columns if row.get(c)}
    return [{"epoch": str(epoch), **values} for epoch, values in sorted(by_epoch.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, nargs="+")
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="", help="the model's name, a column of its own")
    args = parser.parse_args()
    epochs = {row["epoch"]: row for metrics in args.metrics for row in curve(metrics)}  # the later log wins
    rows = [{"model": args.name, **row} for row in sorted(epochs.values(), key=lambda r: int(r["epoch"]))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} epochs -> {args.out}")


if __name__ == "__main__":
    main()
