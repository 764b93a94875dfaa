"""A trained purifier's model card (JSON + Markdown), built from the results table.

Only rows measured with this very checkpoint go in: a row's `models` column fingerprints the
content of every checkpoint it used, and the card recomputes it, as src.eval does, for the
exported checkpoint beside the row's classifier (and the threat's surrogates). Rows of an
older or other model of the same name, or of threat settings other than the named config's,
cannot be matched and are left out, so a card never claims a number its model did not earn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.evaluation.fingerprints import run_fingerprint
from src.reporting.cards import CARD_FORMAT
from src.reporting.rows import content_digest, read_rows, typed
from src.runtime.checkpoints import read
from src.runtime.configs import composed
from src.runtime.errors import AdvPurifyError
from src.runtime.provenance import git_commit


def row_config(cfg: DictConfig, row: dict[str, Any]) -> DictConfig | None:
    """The eval config a row's cell would have had, for its `models` fingerprint; None for a
    classifier or threat this repository has no config for."""
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
    cfg: DictConfig, gradient: str, checkpoint: Path | None, shape: tuple[int, ...], files: list[str]
) -> dict[str, Any]:
    """The card of the checkpoint being exported (None: a defense without weights, described
    by its config), with the rows it earned."""
    ckpt = read(checkpoint, "defense") if checkpoint is not None else None
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
        "checkpoint": None
        if checkpoint is None
        else {"file": checkpoint.name, "sha256": content_digest(checkpoint)},
        "trained_with_commit": "no weights"
        if ckpt is None
        else ckpt["advpurify"].get("commit", "unknown (not recorded)"),
        "exported_with_commit": git_commit(),
        "training": OmegaConf.to_container(cfg.defense, resolve=True)
        if ckpt is None
        else OmegaConf.to_container(OmegaConf.create(ckpt["hyper_parameters"]), resolve=True),
        "gradient": gradient,
        "files": files,
        "results_file": str(cfg.paths.results_file),
        "clean_accuracy": sorted(clean.values(), key=lambda c: (c["classifier"], -c["n"])),
        "robust_accuracy": robust,
    }
