"""The Carlini et al. (2019) checklist, checked on the results table for every defense.

Each check compares rows that should be ordered if the evaluation is sound; a violation
means the attack, not the defense, is probably what failed (gradient masking, a transfer
effect, a bug), and the report flags it loudly. Checks are per (data, defense, classifier):
- `iterative_vs_single_step`: BIM and PGD at eps reach accuracy no higher than FGSM at eps.
  It holds only for an attack that sees what it is scored on: where the attack is oblivious to
  the purifier (`classifier` threat on a defense) or crafted on other models (`transfer`,
  `paper`), iterative examples may overfit what they were crafted on and transfer worse than
  one step, so there a violation is reported as information, not as a failure;
- `adaptive_vs_classifier`: the `pipeline` threat (white-box on the whole defense) reaches
  accuracy no higher than the `classifier` threat at the same attack and eps;
- `whitebox_vs_transfer`: the `classifier` threat (white-box on the target) reaches accuracy no
  higher than the `transfer` or `paper` threat (crafted, in part, on surrogates) at the same
  attack and eps;
- `unbounded_eps`: at an L-inf eps >= 0.5 the image can be overwritten, so accuracy should be
  near chance (at most `chance_margin` above 1 / classes);
- `more_iterations`: rows of one cell that differ only in `attack.max_iter` (`iterations`
  column) never gain accuracy with more iterations.

Every eval scores the first n test images, so two rows with the same n saw the same images and
may differ only by the attacks' randomness (TOLERANCE). Where one row scored fewer images (a
pipeline cell on 100 against a classifier cell on 1,000), its accuracy is a sample of the other's
and may stray by chance: the check allows Z standard errors more and says so in its detail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from math import sqrt

from src.reporting.rows import base_name, without_setting

TOLERANCE = 0.01  # accuracy (as a fraction) two runs on the same images may differ by
Z = 3.0  # standard errors a smaller sample's accuracy may stray from a larger one's (one-sided)
CHANCE = {"fmnist": 0.1, "cifar10": 0.1}

SURROGATE_THREATS = ("transfer", "paper")  # examples crafted on other models than the one scored


@dataclass(frozen=True)
class Check:
    name: str
    cell: str  # data / defense / classifier
    passed: bool
    detail: str
    informational: bool = False  # a violation here is worth knowing, not evidence of a broken attack

    @property
    def failed(self) -> bool:
        return not self.passed and not self.informational


def oblivious(threat: str, defense: str) -> bool:
    """Whether the attack differentiates something other than the scored model."""
    return threat in SURROGATE_THREATS or (threat == "classifier" and defense != "none")


def _acc(row: dict) -> float:
    return float(row["adv_acc"])


def allowance(a: dict, b: dict) -> tuple[float, str]:
    """How much higher one row's accuracy may be than the other's before a check fails, and how
    the detail says so. The smaller sample is the first images of the larger one, hence the
    finite-population factor; the larger sample's accuracy stands for both."""
    small, large = sorted((int(a["n"]), int(b["n"])))
    if small == large:
        return TOLERANCE, ""
    p = _acc(a if int(a["n"]) == large else b)
    extra = Z * sqrt(p * (1 - p) / small * (1 - small / large))
    return TOLERANCE + extra, f" (n {small} vs {large}: {extra:.4f} more allowed, {Z:g} standard errors)"


def ordered(lower: dict, higher: dict) -> tuple[bool, str]:
    """Whether `lower` reaches accuracy no higher than `higher`, up to chance, and the allowance."""
    allowed, note = allowance(lower, higher)
    return _acc(lower) <= _acc(higher) + allowed, note


def sanity_checks(rows: list[dict], chance_margin: float = 0.15) -> list[Check]:
    cells: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for row in rows:
        cells[row["data"], row["defense"], row["classifier"]].append(row)
    checks = []
    for (data, defense, classifier), group in sorted(cells.items()):
        where = f"{data} / {defense} / {classifier}"
        by = {(r["attack"], r["threat"], float(r["eps"])): r for r in group}
        for (attack, threat, eps), row in sorted(by.items()):
            if eps == 0:
                continue
            kind, threat_kind = base_name(attack), base_name(threat)
            fgsm = by.get(("fgsm", threat, eps))
            if kind in ("bim", "pgd") and fgsm is not None:
                ok, note = ordered(row, fgsm)
                detail = (
                    f"{attack} {_acc(row):.4f} vs fgsm {_acc(fgsm):.4f} at eps {eps:g}, threat {threat}{note}"
                )
                checks.append(
                    Check("iterative_vs_single_step", where, ok, detail, oblivious(threat_kind, defense))
                )
            seen = by.get((attack, "classifier", eps))
            if threat_kind == "pipeline" and seen is not None:
                ok, note = ordered(row, seen)
                detail = (
                    f"pipeline {_acc(row):.4f} vs classifier {_acc(seen):.4f}, {attack} at eps {eps:g}{note}"
                )
                checks.append(Check("adaptive_vs_classifier", where, ok, detail))
            if threat_kind in SURROGATE_THREATS and seen is not None:
                ok, note = ordered(seen, row)
                detail = (
                    f"classifier {_acc(seen):.4f} vs {threat} {_acc(row):.4f}, {attack} at eps {eps:g}{note}"
                )
                checks.append(Check("whitebox_vs_transfer", where, ok, detail))
            if kind in ("fgsm", "bim", "pgd") and eps >= 0.5:
                ceiling = CHANCE.get(data, 0.1) + chance_margin
                ok = _acc(row) <= ceiling
                detail = f"{attack} at eps {eps:g}, threat {threat}: {_acc(row):.4f} (ceiling {ceiling:.2f})"
                checks.append(Check("unbounded_eps", where, ok, detail))
        checks += _iteration_checks(where, group)
    return checks


def _iteration_checks(where: str, group: list[dict]) -> list[Check]:
    runs: dict[tuple[str, str, float], dict[int, dict]] = defaultdict(dict)
    for row in group:
        if row.get("iterations") not in (None, ""):
            attack = without_setting(row["attack"], "max_iter")  # pgd[norm=2] is not pgd's curve
            runs[attack, row["threat"], float(row["eps"])][int(row["iterations"])] = row
    checks = []
    for (attack, threat, eps), by_iters in sorted(runs.items()):
        iters = sorted(by_iters)
        for fewer, more in pairwise(iters):
            ok, note = ordered(by_iters[more], by_iters[fewer])
            detail = (
                f"{attack} at eps {eps:g}, threat {threat}: {more} iterations {_acc(by_iters[more]):.4f} "
                f"vs {fewer} iterations {_acc(by_iters[fewer]):.4f}{note}"
            )
            checks.append(Check("more_iterations", where, ok, detail))
    return checks
