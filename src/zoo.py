"""`python -m src.zoo list [--zoo DIR]`: the exported purifiers in a local model zoo, with their
headline numbers.

The layout `src.export` writes: `zoo/<data>/<defense>/` holding `<defense>.ckpt`,
`purifier.pt` (and `defended.pt`), `card.json` and `card.md`. `src.api.load_defense(data,
name, zoo="zoo")` loads from it and `src.api.card(data, name)` reads the card.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from src.card import CARD_JSON, read_card
from src.console import console, user_errors
from src.errors import AdvPurifyError

HEADLINE_EPS = 0.1  # the budget of the headline number (the dissertation's Fashion-MNIST figures)


def entry(zoo: str | Path, data: str, name: str) -> Path:
    """The zoo folder of one defense, once it exists."""
    folder = Path(zoo) / data / name
    if not (folder / f"{name}.ckpt").exists():
        held = sorted(str(p.parent.relative_to(zoo)) for p in Path(zoo).glob(f"*/*/{CARD_JSON}"))
        raise AdvPurifyError(
            f"no {name} for data={data} in {zoo}: export it with python -m src.export defense={name} "
            f"data={data} (the zoo holds {held or 'nothing'})"
        )
    return folder


def cards(zoo: str | Path) -> list[dict[str, Any]]:
    return [read_card(path.parent) for path in sorted(Path(zoo).glob(f"*/*/{CARD_JSON}"))]


def headline(card: dict[str, Any]) -> str:
    """The worst accuracy at HEADLINE_EPS under the adaptive threat, over the attacks run."""
    found = [
        r
        for r in card["robust_accuracy"]
        if r["threat"] == "pipeline" and abs(r["eps"] - HEADLINE_EPS) < 1e-9
    ]
    if not found:
        return "not measured"
    worst = min(found, key=lambda r: r["adv_acc"])
    return f"{worst['adv_acc']:.4f} ({worst['attack']}, n={worst['n']})"


def list_zoo(zoo: str | Path) -> Table:
    adaptive = f"pipeline eps {HEADLINE_EPS:g}, worst"
    table = Table("data", "defense", "size", "clean (purified)", adaptive, "files")
    for card in cards(zoo):
        clean = ", ".join(
            f"{c['purified']:.4f} ({c['classifier']}, n={c['n']})" for c in card["clean_accuracy"]
        )
        table.add_row(
            card["data"],
            card["defense"],
            f"{card['image_size']}px",
            clean or "not measured",
            headline(card),
            " ".join(card["files"]),
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.zoo", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list"])
    parser.add_argument("--zoo", default="zoo", help="the zoo folder (default: zoo)")
    args = parser.parse_args(argv)
    if not Path(args.zoo).is_dir():
        parser.exit(1, f"error: {args.zoo} is not a folder: export a purifier with python -m src.export\n")
    with user_errors():
        console.print(list_zoo(args.zoo))


if __name__ == "__main__":
    main()
