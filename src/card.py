"""A trained purifier's model card (JSON + Markdown), built from the results table.

Only rows measured with this very checkpoint go in: a row's `models` column fingerprints the
content of every checkpoint it used, and the card recomputes it, as src.eval does, for the
exported checkpoint beside the row's classifier (and the threat's surrogates). Rows of an
older or other model of the same name, or of threat settings other than the named config's,
cannot be matched and are left out, so a card never claims a number its model did not earn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.checkpoints import read
from src.errors import AdvPurifyError
from src.provenance import git_commit
from src.results import content_digest, read_rows, typed

CARD_JSON, CARD_MD = "card.json", "card.md"
CARD_FORMAT = 1  # raised whenever a field changes meaning, so an old card is refused, not misread


def row_config(cfg: DictConfig, row: dict[str, Any]) -> DictConfig | None:
    """The eval config a row's cell would have had, for its `models` fingerprint; None for a
    classifier or threat this repository has no config for."""
    from src.api import composed

    base, _, purifier = row["classifier"].partition("+")
    own_ckpt = cfg.ckpt and base == cfg.classifier.name and not purifier  # the export's classifier=
    try:
        return composed(
            "eval",
            [
                f"data={cfg.data.name}",
                f"data.image_size={cfg.data.image_size}",
                f"defense={cfg.defense.name}",
                f"classifier={base}",
                f"threat={row['threat']}",
                f"retrained={bool(purifier)}",
                f"paths.checkpoint_dir={cfg.paths.checkpoint_dir}",
                f"defense_ckpt={cfg.defense_ckpt}" if cfg.defense_ckpt else "defense_ckpt=null",
                f"ckpt={cfg.ckpt}" if own_ckpt else "ckpt=null",
            ],
        )
    except AdvPurifyError:
        return None


def own_rows(cfg: DictConfig, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """The results rows measured with the exported checkpoint, in table order."""
    from src.eval import run_fingerprint

    rows = [typed(r) for r in read_rows(cfg.paths.results_file)]
    rows = [r for r in rows if r["data"] == cfg.data.name and r["defense"] == cfg.defense.name]
    matches: dict[tuple[str, str], str | None] = {}
    for row in rows:
        group = (row["classifier"], row["threat"])
        if group not in matches:
            composed_cfg = row_config(cfg, row)
            matches[group] = (
                run_fingerprint(composed_cfg, cfg.data.name, row["classifier"], shape)[1]
                if composed_cfg is not None
                else None
            )
    return [r for r in rows if r["models"] == matches[(r["classifier"], r["threat"])]]


def build_card(
    cfg: DictConfig, gradient: str, checkpoint: Path, shape: tuple[int, ...], files: list[str]
) -> dict[str, Any]:
    """The card of the checkpoint being exported, with the rows it earned."""
    ckpt = read(checkpoint, "defense")
    rows = own_rows(cfg, shape)
    clean = {  # one entry per classifier and number of images
        (r["classifier"], r["n"]): {
            "classifier": r["classifier"],
            "n": r["n"],
            "classifier_alone": r["clean_acc"],
            "purified": r["purified_clean_acc"],
        }
        for r in rows
    }
    robust = [
        {k: r[k] for k in ("classifier", "attack", "threat", "eps", "n", "adv_acc", "seed", "commit")}
        for r in rows
        if r["eps"] > 0
    ]
    return {
        "format": CARD_FORMAT,
        "defense": cfg.defense.name,
        "data": cfg.data.name,
        "image_size": int(shape[-1]),
        "input_shape": list(shape),
        "pixels": "float in [0, 1], N x C x H x W, not normalised",
        "checkpoint": {"file": checkpoint.name, "sha256": content_digest(checkpoint)},
        "trained_with_commit": ckpt["advpurify"].get("commit", "unknown (not recorded)"),
        "exported_with_commit": git_commit(),
        "training": OmegaConf.to_container(OmegaConf.create(ckpt["hyper_parameters"]), resolve=True),
        "gradient": gradient,
        "files": files,
        "results_file": str(cfg.paths.results_file),
        "clean_accuracy": sorted(clean.values(), key=lambda c: (c["classifier"], -c["n"])),
        "robust_accuracy": robust,
    }


def render(card: dict[str, Any]) -> str:
    """The card as Markdown."""
    lines = [
        f"# {card['defense']} on {card['data']} ({card['image_size']}x{card['image_size']})",
        "",
        f"- input: {card['pixels']}, shape {tuple(card['input_shape'])}",
        f"- checkpoint: `{card['checkpoint']['file']}` (sha256 {card['checkpoint']['sha256'][:16]}...)",
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
