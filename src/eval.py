"""`python -m src.eval`: attack a (defended) classifier over an eps grid, one results row per eps.

Clean accuracy is the classifier alone on the first `eval.n` test images; purified clean
accuracy and adversarial accuracy are the defended model's (purify, then classify). The
threat model decides what the attack differentiates through (SPEC 4). Every finished row
is appended to the results table at once, so a crash loses nothing already computed.
"""

from __future__ import annotations

import math
import subprocess
import time
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from torch import nn

from src.api import CONF_DIR, build_defense, defended, load_classifier, target_name
from src.attacks import MINIMAL_NORM, parse_norm, within_budget
from src.checkpoints import stable_path
from src.console import console, print_config, user_errors
from src.defenses.base import DefendedClassifier
from src.defenses.vote import VotingDefense
from src.defenses.vote_analysis import vote_analysis
from src.defenses.vq_analysis import vq_analysis
from src.defenses.vqunet import VQUNet
from src.device import resolve_device
from src.errors import AdvPurifyError
from src.loggers import build_loggers, close_loggers, log_results
from src.results import (
    ANALYSIS_COLUMNS,
    COLUMNS,
    KEY,
    VOTE_ANALYSIS_COLUMNS,
    append_rows,
    fingerprint,
    finished_rows,
)
from src.threats import Parts


def validate_eps(eps: Any, norm: float) -> list[float]:
    """eval.eps must be a non-empty list of numbers >= 0 (and <= 1 for L-inf on [0,1] pixels)."""
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
        out.append(float(value))
    return out


def git_commit() -> str:
    """The code version a row came from (`-dirty` when the tree has uncommitted changes)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


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
    defense: nn.Module, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, suffix: str
) -> dict[str, float]:
    """`<decision>_<suffix>` for a defense with its own decision rules (voting: vote, bayes); else {}."""
    if not hasattr(defense, "decide"):
        return {}
    correct: dict[str, int] = {}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        for decision, predicted in defense.decide(classifier, xb).items():
            correct[decision] = correct.get(decision, 0) + (predicted == yb).sum().item()
    return {f"{decision}_{suffix}": hits / len(y) for decision, hits in correct.items()}


def craft(attack, parts: Parts, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each part's images attacked on that part's model (the threat model's split)."""
    x_adv = x.clone()
    for model, index in parts:
        index = index.to(x.device)
        x_adv[index] = attack(model, x[index], y[index])
    return x_adv


def evaluate(cfg: DictConfig) -> list[dict[str, Any]]:
    norm = parse_norm(cfg.attack.norm)
    eps_grid = validate_eps(cfg.eval.eps, norm)
    pl.seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    datamodule = instantiate(cfg.data.module)
    shape = datamodule.input_shape
    name = target_name(cfg.classifier.name, cfg.defense, cfg.retrained)
    stamp = run_fingerprint(cfg, datamodule.name, name)
    done = {} if cfg.eval.recompute else finished_rows(cfg.paths.results_file, stamp)
    todo = [eps for eps in eps_grid if eps not in done]
    if len(todo) < len(eps_grid):
        skipped = ", ".join(f"{e:g}" for e in eps_grid if e in done)
        console.print(
            f"[yellow]already in {cfg.paths.results_file}[/], not recomputed: eps {skipped} "
            "(eval.recompute=true redoes them)"
        )
    if not todo:
        rows = [done[eps] for eps in eps_grid]
        print_rows(rows)
        return rows
    classifier = load_classifier(datamodule.name, name, cfg.ckpt, cfg.paths.checkpoint_dir, shape).to(device)
    defense = build_defense(
        cfg.defense, datamodule.name, cfg.defense_ckpt, cfg.paths.checkpoint_dir, shape, name
    ).to(device)
    if cfg.eval.vq_analysis and not isinstance(defense, VQUNet):
        raise AdvPurifyError(
            f"eval.vq_analysis=true needs a VQUNet-family defense, not defense={cfg.defense.name}"
        )
    if cfg.eval.vote_analysis and not isinstance(defense, VotingDefense):
        raise AdvPurifyError(
            "eval.vote_analysis=true needs a voting defense (e.g. sfl_vae_vote), "
            f"not defense={cfg.defense.name}"
        )
    model = defended(classifier, defense)
    x, y = (t.to(device) for t in datamodule.test_tensors(cfg.eval.n))

    def load(surrogate: str) -> nn.Module:
        return load_classifier(datamodule.name, surrogate, None, cfg.paths.checkpoint_dir, shape).to(device)

    parts = instantiate(cfg.threat, _convert_="all").parts(classifier, defense, len(y), load)

    batch = cfg.eval.batch_size
    purified_acc, clean_l1, _ = purified_scores(model, x, x, y, batch)
    base = {
        "data": datamodule.name,
        "defense": cfg.defense.name,
        "classifier": name,
        "attack": cfg.attack.name,
        "threat": cfg.threat.name,
        "n": len(y),
        "clean_acc": accuracy(classifier, x, y, batch),
        "purified_clean_acc": purified_acc,
        "clean_recon_l1_255": clean_l1,
        "seed": cfg.seed,
        "commit": git_commit(),
        "fingerprint": stamp,
    }
    decided = decision_accuracies(defense, classifier, x, y, batch, "clean_acc")
    loggers = build_loggers(cfg)
    minimal = cfg.attack.name in MINIMAL_NORM
    rows, crafted, craft_seconds = [], None, 0.0
    for step, eps in enumerate(todo):
        start = time.perf_counter()
        if eps == 0:
            x_adv = x
        elif minimal:  # one attack serves every budget; each row reports its cost
            if crafted is None:
                crafted = craft(instantiate(cfg.attack), parts, x, y)
                craft_seconds = time.perf_counter() - start
            x_adv = within_budget(crafted, x, eps, norm)
        else:
            x_adv = craft(instantiate(cfg.attack, eps=eps), parts, x, y)
        seconds = craft_seconds if minimal and eps > 0 else time.perf_counter() - start
        delta = (x_adv - x).flatten(1)
        adv_acc, adv_l1, adv_l2 = purified_scores(model, x_adv, x, y, batch)
        row = {
            **base,
            "eps": eps,
            "adv_acc": adv_acc,
            "adv_recon_l1_255": adv_l1,
            "adv_recon_l2": adv_l2,
            "l2_mean": delta.norm(dim=1).mean().item(),
            "linf_max": delta.abs().max().item(),
            "iterations": cfg.attack.get("max_iter", 1),
            "seconds": round(seconds, 3),
        }
        row = {column: row[column] for column in COLUMNS}
        row |= decided | decision_accuracies(defense, classifier, x_adv, y, batch, "acc")
        append_rows(cfg.paths.results_file, [row])
        cell = {k: row[k] for k in (*KEY, "n", "seed", "commit")}
        if cfg.eval.vq_analysis and eps > 0:
            found = vq_analysis(defense, x, x_adv, batch)
            analysis = [{**cell, "metric": m, "depth": d, "value": v} for m, d, v in found]
            append_rows(cfg.paths.analysis_file, analysis, ANALYSIS_COLUMNS)
        if cfg.eval.vote_analysis:
            found = vote_analysis(defense, x_adv, y, batch, cfg.seed)
            analysis = [{**cell, "metric": m, "voters": r, "value": v} for m, r, v in found]
            append_rows(cfg.paths.vote_analysis_file, analysis, VOTE_ANALYSIS_COLUMNS)
        for logger in loggers:
            logger.log_metrics({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=step)
        rows.append(row)
    log_results(loggers, rows, f"{cfg.defense.name} / {name} / {cfg.attack.name} / {cfg.threat.name}")
    close_loggers(loggers)
    fresh = {row["eps"]: row for row in rows}
    rows = [fresh[eps] if eps in fresh else done[eps] for eps in eps_grid]
    print_rows(rows)
    return rows


def run_fingerprint(cfg: DictConfig, data: str, classifier: str) -> str:
    """What decides this run's numbers beyond its results key (see `results.fingerprint`)."""
    settings = {
        key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("attack", "defense", "threat")
    }
    settings |= {"data": OmegaConf.to_container(cfg.data, resolve=True), "n": cfg.eval.n, "seed": cfg.seed}
    settings |= {"analyses": [cfg.eval.vq_analysis, cfg.eval.vote_analysis]}  # their rows come with the cell
    ckpt_dir = cfg.paths.checkpoint_dir
    files = [cfg.ckpt or stable_path(ckpt_dir, data, classifier)]
    files.append(cfg.defense_ckpt or stable_path(ckpt_dir, data, cfg.defense.name))
    return fingerprint(settings, files)


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

    importable_main()
