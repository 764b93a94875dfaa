"""`python -m src.eval`: attack a (defended) classifier over an eps grid, one results row per eps.

Clean accuracy is the classifier alone on the first `eval.n` test images; purified clean
accuracy and adversarial accuracy are the defended model's (purify, then classify). The
threat model decides what the attack differentiates through (SPEC 4). Every finished row
is appended to the results table at once, so a crash loses nothing already computed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.table import Table
from torch import nn

from src.attacks import parse_norm, within_budget
from src.attacks.base import Attack, attack_class
from src.data.base import ImageDataModule
from src.defenses.base import (
    Analysis,
    DefendedClassifier,
    Defense,
    check_images,
    check_labels,
    defense_class,
    parameter_dtype,
)
from src.evaluation.crafted import FolderStore, Store, crafted_part, shared_store
from src.evaluation.fingerprints import named_variant, run_files, run_fingerprint, white_box_name
from src.evaluation.grids import grid_images
from src.evaluation.models import build_defense, common_shape, defended, load_classifier, target_name
from src.evaluation.settings import validate
from src.evaluation.threats import Parts
from src.reporting.grids import grid_path, grid_title, save_grid
from src.reporting.rows import (
    COLUMNS,
    KEY,
    append_rows,
    cell_seed,
    finished_rows,
    require_writable,
    require_writable_file,
    write_layout,
)
from src.runtime.configs import CONF_DIR, composed, require_readable_conf
from src.runtime.console import console, image_progress, print_config, user_errors
from src.runtime.deadline import OutOfTime, past
from src.runtime.devices import resolve_device
from src.runtime.errors import AdvPurifyError, build
from src.runtime.locks import locked
from src.runtime.loggers import build_loggers, close_loggers, log_grid, log_results
from src.runtime.provenance import git_commit


def validate_eps(eps: Any, norm: float, shape: tuple[int, ...] | None = None) -> list[float]:
    """eval.eps must be a non-empty list of numbers >= 0, within the largest distance two
    images of `shape` on [0, 1] pixels can have: 1 in L-inf, sqrt(pixels) in L2 (a larger
    budget allows any image, and its "robust" accuracy says nothing)."""
    values = list(eps) if not isinstance(eps, (int, float, str)) else [eps]
    if not values:
        raise AdvPurifyError("eval.eps is empty: give at least one budget, e.g. eval.eps=[0.1,0.3]")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise AdvPurifyError(f"eval.eps holds {value!r}: every budget must be a number")
        if value < 0:
            raise AdvPurifyError(f"eval.eps holds {value}: budgets must be >= 0")
        if norm == math.inf and value > 1:
            raise AdvPurifyError(
                f"eval.eps holds {value}: an L-inf budget above 1 is meaningless on [0,1] pixels"
            )
        widest = math.sqrt(math.prod(shape)) if shape is not None else math.inf
        if norm == 2 and value > widest:
            raise AdvPurifyError(
                f"eval.eps holds {value}: no two {'x'.join(map(str, shape))} images on [0,1] pixels are "
                f"further apart than L2 {widest:.3g}; choose budgets up to that"
            )
        out.append(float(value))
    return out


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = sum(
        (model(xb).argmax(1) == yb).sum().item()
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True)
    )
    return correct / len(y)


@torch.inference_mode()
def purified_scores(
    model: DefendedClassifier, x_in: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> tuple[float, float, float]:
    """Accuracy on purify(x_in), and how far purify(x_in) lies from the clean x, in one pass.

    Returns (accuracy, mean per-image sum |x - X_C| on the 0-255 scale as in Table 4.1,
    mean per-image ||x - X_C||_2 on [0, 1] pixels).
    """
    correct, l1, l2 = 0, 0.0, 0.0
    for xb_in, xb, yb in zip(x_in.split(batch_size), x.split(batch_size), y.split(batch_size), strict=True):
        x_hat = model.defense.purify(xb_in)
        correct += (model.classifier(x_hat).argmax(1) == yb).sum().item()
        diff = (x_hat - xb).flatten(1)
        l1 += diff.abs().sum(1).sum().item()
        l2 += diff.norm(dim=1).sum().item()
    n = len(y)
    return correct / n, 255 * l1 / n, l2 / n


@torch.inference_mode()
def decision_accuracies(
    defense: Defense, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, suffix: str
) -> dict[str, float]:
    """`<decision>_<suffix>` for each decision of the defense's own (`Defense.decide`); for an
    (N, M) decision of M members, their mean accuracy."""
    correct: dict[str, float] = {}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        for decision, predicted in defense.decide(classifier, xb).items():
            hits = (predicted == yb.view(-1, *[1] * (predicted.dim() - 1))).float()
            per_image = hits.flatten(1).mean(1) if hits.dim() > 1 else hits
            correct[decision] = correct.get(decision, 0.0) + per_image.sum().item()
    return {f"{decision}_{suffix}": hits / len(y) for decision, hits in correct.items()}


class Crafter:
    """Adversarial images per eps. Every attack of the grid is built up front, so a bad setting
    stops before any image is attacked; a minimal-norm attack is built and crafted once, and
    each budget keeps the examples within its ball.

    Under an oblivious threat (`classifier`, `transfer`, `paper`) the images do not depend on
    the defense, so their seeds leave it out, and the parts of each crafting can be kept in a
    `store` the next runs share (the next defense's cell; see `src.evaluation.crafted`); a row reports the
    seconds of the crafting that made its images. With `part_size`, each model's share is
    crafted in parts of that many images; when parts are kept on disk, none starts after
    `deadline` (stopping there loses nothing)."""

    def __init__(
        self,
        attack: DictConfig,
        eps_grid: list[float],
        oblivious: bool,
        store: Store | FolderStore | None = None,
        part_size: int | None = None,
        deadline: float | None = None,
    ) -> None:
        self.minimal = attack_class(attack._target_).minimal_norm is not None
        if self.minimal:
            self.attacks = {None: build(attack)}
        else:
            self.attacks = {eps: build(attack, eps=eps) for eps in eps_grid if eps > 0}
        self.recipe = json.dumps(OmegaConf.to_container(attack, resolve=True), sort_keys=True, default=str)
        self.oblivious = oblivious
        self.store = Store() if store is None else store
        self.part_size = part_size
        self.deadline = deadline if isinstance(self.store, FolderStore) else None

    def __call__(
        self, parts: Parts, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int
    ) -> tuple[torch.Tensor, float]:
        """x_adv at eps and the attack's seconds (a minimal-norm row reports its one crafting).

        The attack's random draws (PGD's start, EOT) come from `seed` and the budget alone."""
        if eps == 0:
            return x, 0.0
        budget = None if self.minimal else eps
        attack = self.attacks[budget]
        torch.manual_seed(cell_seed(seed, eps) if budget is not None else cell_seed(seed, "minimal-norm"))
        label = f"{attack.name} eps {eps:g}" if budget is not None else f"{attack.name} (once for every eps)"
        with image_progress(label, len(x)) as done:
            x_adv, seconds = craft(attack, parts, x, y, done, self, f"{self.recipe} at {budget}")
        if self.minimal:
            x_adv = within_budget(x_adv, x, eps, self.attacks[None].norm)
        return x_adv, seconds


def craft(
    attack: Attack,
    parts: Parts,
    x: torch.Tensor,
    y: torch.Tensor,
    done: Callable[[int], None],
    crafter: Crafter,
    recipe: str,
) -> tuple[torch.Tensor, float]:
    """Each part's images attacked on that part's model (the threat model's split, cut into
    `crafter.part_size` images), or found in the crafter's store, and the seconds their crafting
    took."""
    x_adv, seconds = x.clone(), 0.0
    for model, index in parts:
        index = index.to(x.device)
        for chunk in index.split(crafter.part_size) if crafter.part_size else [index]:
            part, fresh = crafted_part(
                crafter.store, recipe, partial(attack, done=done), model, x[chunk], y[chunk], crafter.deadline
            )
            if not fresh:
                done(len(chunk))
            x_adv[chunk] = part.images
            seconds += part.seconds
    return x_adv, seconds


@dataclass
class Plan:
    """Which cells of the grid a run computes, and the finished rows it reuses."""

    fingerprint: str
    models: str
    done: dict[float, dict[str, Any]]
    todo: list[float]
    analyses: list[Analysis]


def plan(cfg: DictConfig, stamp: str, models: str, eps_grid: list[float]) -> Plan:
    offered = {a.name: a for a in defense_class(cfg.defense._target_).analyses}
    if not isinstance(cfg.eval.analyses, ListConfig):
        raise AdvPurifyError(
            f"eval.analyses={cfg.eval.analyses!r} must be a list, e.g. 'eval.analyses=[vq_analysis]'"
        )
    for name in cfg.eval.analyses:
        if name not in offered:
            raise AdvPurifyError(
                f"eval.analyses names {name}, which defense={cfg.defense.name} does not offer: "
                f"it offers {sorted(offered) or 'none'}"
            )
    done = {} if cfg.eval.recompute else finished_rows(cfg.paths.results_file, stamp)
    todo = [eps for eps in eps_grid if eps not in done]
    if len(todo) < len(eps_grid):
        skipped = ", ".join(f"{e:g}" for e in eps_grid if e in done)
        console.print(
            f"[yellow]already in {cfg.paths.results_file}[/], not recomputed: eps {skipped} "
            "(eval.recompute=true redoes them)"
        )
    return Plan(stamp, models, done, todo, [offered[name] for name in cfg.eval.analyses])


@dataclass
class Loaded:
    """The models and images one run attacks."""

    classifier: nn.Module
    defense: Defense
    model: DefendedClassifier
    x: torch.Tensor
    y: torch.Tensor
    parts: Parts


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


def clean_scores(loaded: Loaded, batch: int, seed: int, data: str, name: str) -> dict[str, float]:
    """The classifier's clean accuracy, and the defended model's on purified clean images."""
    torch.manual_seed(cell_seed(seed, data, name, "clean"))  # a random purifier's draws
    purified_acc, clean_l1, _ = purified_scores(loaded.model, loaded.x, loaded.x, loaded.y, batch)
    return {
        "clean_acc": accuracy(loaded.classifier, loaded.x, loaded.y, batch),
        "purified_clean_acc": purified_acc,
        "clean_recon_l1_255": clean_l1,
    }


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


def measure(
    loaded: Loaded, crafter: Crafter, eps: float, base: dict[str, Any], batch: int, iterations: int
) -> tuple[dict[str, Any], torch.Tensor]:
    """One (attack, eps) cell: its results row and the adversarial images."""
    x, y = loaded.x, loaded.y
    ignored = ("eps", "defense") if crafter.oblivious else ("eps",)  # what the images do not depend on
    seed = cell_seed(base["seed"], *(base[k] for k in KEY if k not in ignored))
    x_adv, seconds = crafter(loaded.parts, x, y, eps, seed)
    torch.manual_seed(cell_seed(seed, eps, "scores"))
    delta = (x_adv - x).flatten(1)
    adv_acc, adv_l1, adv_l2 = purified_scores(loaded.model, x_adv, x, y, batch)
    row = {
        **base,
        "eps": eps,
        "adv_acc": adv_acc,
        "adv_recon_l1_255": adv_l1,
        "adv_recon_l2": adv_l2,
        "l2_mean": delta.norm(dim=1).mean().item(),
        "linf_max": delta.abs().max().item(),
        "iterations": iterations,
        "seconds": round(seconds, 3),
    }
    row = {column: row[column] for column in COLUMNS}
    clean_decisions = decision_accuracies(loaded.defense, loaded.classifier, x, y, batch, "clean_acc")
    adv_decisions = decision_accuracies(loaded.defense, loaded.classifier, x_adv, y, batch, "acc")
    return row | clean_decisions | adv_decisions, x_adv


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
    eps_grid = validate_eps(eps, parse_norm(cfg.attack.norm))
    shape = common_shape(classifier, defense)
    check_images(x, shape, parameter_dtype(classifier))
    validate_eps(eps, parse_norm(cfg.attack.norm), tuple(x.shape[1:]))
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    print_config(cfg)
    with user_errors():
        evaluate(cfg)


if __name__ == "__main__":
    # Run the importable src.eval.main, not this __main__ copy: parallel launchers (joblib,
    # submitit) pickle the task function, and a function from __main__ would be pickled by
    # value with everything it references (the console's lock cannot be).
    from src.eval import main as importable_main

    with user_errors():
        require_readable_conf()
    importable_main()
