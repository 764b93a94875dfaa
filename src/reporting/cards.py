"""Model cards (JSON + Markdown) and the zoo's layout: `zoo/<data>/<defense>/` holding
`<defense>.ckpt`, `purifier.pt` (and `defended.pt`), `card.json` and `card.md`.

A card is built at export from the rows its checkpoint earned (src/evaluation/cards.py); here it
is written, read and summarized, without torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from src.reporting.rows import content_digest
from src.runtime.errors import AdvPurifyError

CARD_JSON, CARD_MD = "card.json", "card.md"
CARD_FORMAT = 2  # raised whenever a field changes meaning, so an old card is refused, not misread

HEADLINE_EPS = 0.1  # the budget of the headline number (the dissertation's Fashion-MNIST figures)


def entry(zoo: str | Path, data: str, name: str) -> Path:
    """The zoo folder of one defense, once it exists and every file its card names is the
    file the card was written for (`verify`)."""
    folder = Path(zoo) / data / name
    if not (folder / CARD_JSON).exists():
        held = sorted(str(p.parent.relative_to(zoo)) for p in Path(zoo).glob(f"*/*/{CARD_JSON}"))
        raise AdvPurifyError(
            f"no {name} for data={data} in {zoo}: export it with python -m src.export defense={name} "
            f"data={data} (the zoo holds {held or 'nothing'})"
        )
    verify(folder, read_card(folder))
    return folder


def digests(folder: Path, files: list[str]) -> dict[str, str]:
    """The sha256 of each file a card names, as the card records them."""
    return {name: content_digest(folder / name) for name in files}


def verify(folder: Path, card: dict[str, Any]) -> None:
    """Refuse a zoo folder whose files are not the ones its card was written for: a file
    changed, swapped or left over from another export is never loaded under this card."""
    recorded = card.get("sha256") or {}
    for name, digest in recorded.items():
        if content_digest(folder / name) != digest:
            raise AdvPurifyError(
                f"{folder / name} is not the file its card records (sha256 differs or it is missing): "
                f"export it again with python -m src.export defense={card['defense']} data={card['data']}"
            )


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


def render(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    lines = [
        f"# {card['defense']} on {card['data']} ({card['image_size']}x{card['image_size']})",
        "",
        f"- input: {card['pixels']}, shape {tuple(card['input_shape'])}",
        f"- checkpoint: `{card['checkpoint']['file']}` (sha256 {card['checkpoint']['sha256'][:16]}...)"
        if card["checkpoint"]
        else "- checkpoint: none (a defense without weights)",
        f"- trained with commit {card['trained_with_commit']}, exported with {card['exported_with_commit']}",
        f"- gradient for adaptive attacks: {card['gradient']} (attack it through `src.api.attackable`)",
        f"- files: {', '.join(f'`{f}`' for f in card['files'])}",
        "",
        "## Training settings",
        "",
        *[f"- {k}: {v}" for k, v in card["training"].items()],
        "",
        "## Clean accuracy",
        "",
    ]
    if card["clean_accuracy"]:
        lines += ["| classifier | n | classifier alone | purified |", "|---|---|---|---|"]
        lines += [
            f"| {c['classifier']} | {c['n']} | {c['classifier_alone']:.4f} | {c['purified']:.4f} |"
            for c in card["clean_accuracy"]
        ]
    else:
        lines.append(f"Not evaluated with this checkpoint ({card['results_file']} has no row of it).")
    lines += ["", "## Accuracy under attack", ""]
    if card["robust_accuracy"]:
        lines += ["| classifier | attack | threat | eps | n | accuracy |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {r['classifier']} | {r['attack']} | {r['threat']} | {r['eps']:g} | {r['n']} "
            f"| {r['adv_acc']:.4f} |"
            for r in card["robust_accuracy"]
        ]
        lines += ["", "`threat=pipeline` is the adaptive attack through the purifier (SPEC 4.2)."]
    else:
        lines.append("Not attacked with this checkpoint: run `python -m src.eval` and export again.")
    return "\n".join(lines) + "\n"


def write_card(card: dict[str, Any], folder: Path) -> None:
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (folder / CARD_MD).write_text(render(card))


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_JSON
    if not path.exists():
        raise AdvPurifyError(f"no model card at {path}: export it with python -m src.export")
    found = json.loads(path.read_text())
    if not isinstance(found, dict) or found.get("format") != CARD_FORMAT:
        raise AdvPurifyError(
            f"{path} is not a card of format {CARD_FORMAT}: export it again with python -m src.export "
            f"defense={folder.name} data={folder.parent.name}"
        )
    return found
