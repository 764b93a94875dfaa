"""`python -m src.zoo list [--zoo DIR]`: the exported purifiers in a local model zoo, with their
headline numbers.

The layout `src.export` writes: `zoo/<data>/<defense>/` holding `<defense>.ckpt`,
`purifier.pt` (and `defended.pt`), `card.json` and `card.md`. `src.api.load_defense(data,
name, zoo="zoo")` loads from it and `src.api.card(data, name)` reads the card.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from src.reporting.cards import HEADLINE_EPS, cards, headline
from src.runtime.console import console, user_errors


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
