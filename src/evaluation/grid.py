"""A grid of cells, end to end: plan -> craft -> score -> write, each cell written as soon as it
is measured, so a crash loses nothing already computed. `src.eval` (the CLI) and the API's
`robust_accuracy` both run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig
from rich.table import Table
from torch import nn

from src.attacks import parse_norm
from src.attacks.base import attack_class
from src.data.base import ImageDataModule
from src.defenses.base import (
    Analysis,
    DefendedClassifier,
    Defense,
    check_images,
    check_labels,
    parameter_dtype,
)
from src.evaluation.crafted import shared_store
from src.evaluation.crafting import Crafter
from src.evaluation.fingerprints import named_variant, run_files, run_fingerprint, white_box_name
from src.evaluation.grids import grid_images
from src.evaluation.models import build_defense, common_shape, defended, load_classifier, target_name
from src.evaluation.planning import Plan, plan, validate_eps
from src.evaluation.scoring import Loaded, clean_scores, measure
from src.evaluation.settings import validate
from src.reporting.grids import grid_path, grid_title, save_grid
from src.reporting.rows import (
    KEY,
    append_rows,
    require_writable,
    require_writable_file,
    write_layout,
)
from src.runtime.configs import composed
from src.runtime.console import console
from src.runtime.deadline import OutOfTime, past
from src.runtime.devices import resolve_device
from src.runtime.errors import AdvPurifyError, build
from src.runtime.locks import locked
from src.runtime.loggers import build_loggers, close_loggers, log_grid, log_results
from src.runtime.provenance import git_commit


def load(cfg: DictConfig, datamodule: ImageDataModule, name: str, device: torch.device) -> Loaded:
    shape, ckpt_dir = datamodule.input_shape, cfg.paths.checkpoint_dir
    classifier = load_classifier(datamodule.name, name, cfg.ckpt, ckpt_dir, shape).to(device)
    defense = build_defense(cfg.defense, datamodule.name, cfg.defense_ckpt, ckpt_dir, shape, name).to(device)
    x, y = (t.to(device) for t in datamodule.test_tensors(cfg.eval.n))
    if len(y) < cfg.eval.n:
        raise AdvPurifyError(f"eval.n={cfg.eval.n} exceeds the {len(y)} test images: set eval.n={len(y)}")

    def surrogate(other: str) -> nn.Module:
        return load_classifier(datamodule.name, other, None, ckpt_dir, shape).to(device)

    white_box = white_box_name(cfg, name)
    attacked = classifier if white_box == name else surrogate(white_box).requires_grad_(False)
    parts = build(cfg.threat, _convert_="all").parts(attacked, defense, len(y), surrogate)
    return Loaded(classifier, defense, defended(classifier, defense), x, y, parts)


def clean_columns(cfg: DictConfig, loaded: Loaded, data: str, name: str, todo: Plan) -> dict[str, Any]:
    """What every row of the run shares: its key but eps, and the clean accuracies."""
    return {
        "data": data,
        "defense": cfg.defense.name,
        "classifier": name,
        "attack": named_variant(cfg.attack, "attack"),
        "threat": named_variant(cfg.threat, "threat"),
        "n": len(loaded.y),
        **clean_scores(loaded, cfg.eval.batch_size, cfg.seed, data, name),
        "seed": cfg.seed,
        "commit": git_commit(),
        "fingerprint": todo.fingerprint,
        "models": todo.models,
    }


def write(
    cfg: DictConfig,
    loaded: Loaded,
    analyses: list[Analysis],
    row: dict[str, Any],
    x_adv: torch.Tensor,
    picture: np.ndarray | None,
) -> None:
    """The row, its grid of images and the rows of every requested analysis of its cell, each
    written at once."""
    append_rows(cfg.paths.results_file, [row])
    if picture is not None:
        save_grid(picture, grid_path(cfg.paths.results_dir, row), grid_title(row))
    cell = {k: row[k] for k in (*KEY, "n", "seed", "commit")}
    for analysis in analyses:
        if analysis.adversarial_only and row["eps"] == 0:
            continue
        found = analysis.measure(
            loaded.defense, loaded.classifier, loaded.x, x_adv, loaded.y, cfg.eval.batch_size, cfg.seed
        )
        rows = [{**cell, **dict(zip((*analysis.columns, "value"), values, strict=True))} for values in found]
        path = Path(cfg.paths.results_dir) / f"{analysis.name}.csv"
        append_rows(path, rows, (*KEY, "n", *analysis.columns, "value", "seed", "commit"))
        write_layout(path.with_suffix(".layout.json"), analysis.layout())


def evaluate(cfg: DictConfig, deadline: float | None = None) -> list[dict[str, Any]]:
    """The run's grid, each cell written as soon as it is measured. With a `deadline` (a
    `time.time()`), no cell starts after it: OutOfTime, with the finished cells kept."""
    validate(cfg)
    norm = parse_norm(cfg.attack.norm)
    eps_grid = validate_eps(cfg.eval.eps, norm)
    require_writable(cfg.paths.results_dir, "paths.results_dir")
    require_writable_file(cfg.paths.results_file, "paths.results_file")
    pl.seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    datamodule = build(cfg.data.module)
    validate_eps(cfg.eval.eps, norm, datamodule.input_shape)
    name = target_name(cfg.classifier.name, cfg.defense, cfg.retrained)
    stamp, models = run_fingerprint(cfg, datamodule.name, name, datamodule.input_shape)
    oblivious = get_class(cfg.threat._target_).oblivious
    if cfg.paths.crafted_dir is not None:
        require_writable(cfg.paths.crafted_dir, "paths.crafted_dir")
    elif cfg.eval.part_size is not None:
        raise AdvPurifyError(
            "eval.part_size keeps each part in paths.crafted_dir, which is null: set "
            "paths.crafted_dir=<folder>, or eval.part_size=null"
        )
    kept = oblivious or cfg.eval.part_size is not None  # shared by other cells, or resumed
    store = shared_store(cfg.paths.crafted_dir) if kept else None
    crafter = Crafter(cfg.attack, eps_grid, oblivious, store, cfg.eval.part_size, deadline)
    # the same cells started twice at once: the second waits, then finds them done
    with locked(Path(cfg.paths.results_dir) / ".running" / stamp):
        todo = plan(cfg, stamp, models, eps_grid)
        rows = compute(cfg, datamodule, name, device, crafter, todo, deadline) if todo.todo else []
    fresh = {row["eps"]: row for row in rows}
    rows = [fresh[eps] if eps in fresh else todo.done[eps] for eps in eps_grid]
    print_rows(rows)
    return rows


def grid_state(cfg: DictConfig) -> tuple[str, list[Path], list[float]]:
    """The run's fingerprint, the checkpoints it reads and its eps grid: what decides whether
    its cells are in the results table already."""
    datamodule = build(cfg.data.module)
    name = target_name(cfg.classifier.name, cfg.defense, cfg.retrained)
    data, shape = datamodule.name, datamodule.input_shape
    stamp, _ = run_fingerprint(cfg, data, name, shape)
    return stamp, run_files(cfg, data, name, shape), validate_eps(cfg.eval.eps, parse_norm(cfg.attack.norm))


def compute(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    name: str,
    device: torch.device,
    crafter: Crafter,
    todo: Plan,
    deadline: float | None = None,
) -> list[dict[str, Any]]:
    """The planned cells, each written as soon as it is measured, none started after `deadline`."""
    rows: list[dict[str, Any]] = []
    loaded = load(cfg, datamodule, name, device)
    base = clean_columns(cfg, loaded, datamodule.name, name, todo)
    loggers = build_loggers(cfg)
    iterations = attack_class(cfg.attack._target_).iterations_of(cfg.attack)
    try:
        for step, eps in enumerate(todo.todo):
            if past(deadline):
                left = ", ".join(f"{e:g}" for e in todo.todo[step:])
                raise OutOfTime(f"out of time before eps {left}: {step} of {len(todo.todo)} cells written")
            row, x_adv = measure(loaded, crafter, eps, base, cfg.eval.batch_size, iterations)
            picture = grid_images(loaded.defense, loaded.x, x_adv) if eps > 0 else None
            write(cfg, loaded, todo.analyses, row, x_adv, picture)
            console.print(
                f"{row['defense']} / {row['classifier']} / {row['attack']} / {row['threat']} eps {eps:g}: "
                f"accuracy {row['adv_acc']:.4f} (n={row['n']}, {row['seconds']:.1f} s)"
            )
            for logger in loggers:
                logger.log_metrics({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)
            if picture is not None:
                log_grid(loggers, f"grid/{row['attack']}_eps{eps:g}", picture, grid_title(row))
            rows.append(row)
        log_results(loggers, rows, f"{cfg.defense.name} / {name} / {cfg.attack.name} / {cfg.threat.name}")
    finally:
        close_loggers(loggers)
    return rows


def scores_under_attack(
    classifier: nn.Module,
    defense: Defense,
    x: torch.Tensor,
    y: torch.Tensor,
    overrides: list[str],
    eps: Any,
    checkpoint_dir: str | Path,
) -> dict[float, float]:
    """The API's `robust_accuracy`: the adv_acc of the cells `evaluate` computes for these
    models, images and overrides, by the same crafting and seeds, with nothing written."""
    cfg = composed("eval", overrides)
    validate(cfg)
    shape = common_shape(classifier, defense)
    check_images(x, shape, parameter_dtype(classifier))
    eps_grid = validate_eps(eps, parse_norm(cfg.attack.norm), tuple(x.shape[1:]))
    with torch.no_grad():
        check_labels(y, len(x), classifier(defense.purify(x[:1])).shape[1])
    hparams = getattr(classifier, "hparams", {})
    data, name = hparams.get("data", "custom"), hparams.get("name", "custom")

    def surrogate(other: str) -> nn.Module:
        return load_classifier(data, other, None, checkpoint_dir, shape).to(x.device)

    parts = build(cfg.threat, _convert_="all").parts(classifier, defense, len(y), surrogate)
    loaded = Loaded(classifier, defense, DefendedClassifier(classifier, defense), x, y.to(x.device), parts)
    crafter = Crafter(cfg.attack, eps_grid, get_class(cfg.threat._target_).oblivious)
    attack, threat = named_variant(cfg.attack, "attack"), named_variant(cfg.threat, "threat")
    key = {"data": data, "defense": defense.name, "classifier": name, "attack": attack}
    base = key | {"threat": threat, "n": len(y), "seed": cfg.seed}
    base |= clean_scores(loaded, cfg.eval.batch_size, cfg.seed, data, name)
    base |= {"commit": "", "fingerprint": "", "models": ""}
    iterations = attack_class(cfg.attack._target_).iterations_of(cfg.attack)
    return {
        eps: measure(loaded, crafter, eps, base, cfg.eval.batch_size, iterations)[0]["adv_acc"]
        for eps in eps_grid
    }


def print_rows(rows: list[dict[str, Any]]) -> None:
    table = Table("attack", "eps", "n", "clean", "purified", "adversarial", "L2 mean", "seconds")
    for r in rows:
        table.add_row(
            r["attack"],
            f"{r['eps']:g}",
            str(r["n"]),
            f"{r['clean_acc']:.4f}",
            f"{r['purified_clean_acc']:.4f}",
            f"{r['adv_acc']:.4f}",
            f"{r['l2_mean']:.3f}",
            f"{r['seconds']:.1f}",
        )
    console.print(table)
