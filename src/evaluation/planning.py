"""Which cells of an eps grid a run computes: the budgets checked against the image, the
finished rows it reuses (by fingerprint) and the analyses it adds (SPEC 4: eval's first step)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig

from src.defenses.base import (
    Analysis,
    defense_class,
)
from src.reporting.rows import (
    finished_rows,
)
from src.runtime.console import console
from src.runtime.errors import AdvPurifyError


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
