"""The sanity checklist: each check fires on the rows that violate it, and a defense that masks
gradients is flagged in the report end to end."""

from __future__ import annotations

import torch

from src.defenses.base import Defense
from src.eval import evaluate
from src.report import report
from src.results import COLUMNS
from src.sanity import sanity_checks
from tests.conftest import compose_cfg


def row(attack: str, eps: float, acc: float, threat: str = "classifier", **extra) -> dict:
    base = dict.fromkeys(COLUMNS, 0) | {"data": "fmnist", "defense": "d", "classifier": "c"}
    return base | {"attack": attack, "threat": threat, "eps": eps, "adv_acc": acc, **extra}


def verdicts(rows: list[dict]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = {}
    for check in sanity_checks(rows):
        out.setdefault(check.name, []).append(check.passed)
    return out


def test_sound_rows_pass_every_check():
    rows = [
        row("fgsm", 0.1, 0.5),
        row("pgd", 0.1, 0.3),
        row("fgsm", 0.1, 0.2, "pipeline"),
        row("fgsm", 0.1, 0.7, "transfer"),
        row("pgd", 1.0, 0.05),
        row("pgd", 0.3, 0.2, iterations=10),
        row("pgd", 0.3, 0.1, iterations=40),
    ]
    got = verdicts(rows)
    names = {"iterative_vs_single_step", "adaptive_vs_classifier", "whitebox_vs_transfer"}
    names |= {"unbounded_eps", "more_iterations"}
    assert set(got) == names
    assert all(all(v) for v in got.values())


def test_each_violation_is_flagged():
    got = verdicts(
        [
            row("fgsm", 0.1, 0.3),
            row("bim", 0.1, 0.6),  # iterative weaker than single-step
            row("fgsm", 0.1, 0.5, "pipeline"),  # adaptive weaker than classifier-only
            row("fgsm", 0.1, 0.1, "transfer"),  # transfer stronger than white-box
            row("fgsm", 1.0, 0.8),  # an unbounded budget leaves accuracy high
            row("pgd", 0.3, 0.1, iterations=10),
            row("pgd", 0.3, 0.4, iterations=100),  # more iterations raise accuracy
        ]
    )
    assert got["iterative_vs_single_step"] == [False]
    assert got["adaptive_vs_classifier"] == [False]
    assert got["whitebox_vs_transfer"] == [False]
    assert got["unbounded_eps"] == [False]
    assert got["more_iterations"] == [False]


class GradientMasking(Defense):
    """A broken 'defense': the identity, but it cuts every gradient that passes through it."""

    gradient = "exact"  # what it claims

    def __init__(self, name: str = "masking") -> None:
        super().__init__()
        self.name = name

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach() + 0 * x


def test_a_gradient_masking_defense_is_flagged_in_the_report(trained, tmp_path):
    common = [
        "debug=smoke",
        f"ckpt={trained['ckpt']}",
        "defense._target_=tests.test_sanity.GradientMasking",
        "defense.name=masking",
        "attack=fgsm",
        "eval.eps=[0.1,1.0]",
    ]
    for threat in ("classifier", "pipeline"):
        evaluate(compose_cfg("eval", [*common, f"threat={threat}"], tmp_path))
    cfg = compose_cfg("report", [], tmp_path)
    text = report(cfg.paths.results_file, cfg.paths.report_dir).read_text()
    assert "sanity checks FAILED" in text
    assert "| **FAILED** | adaptive_vs_classifier | fmnist / masking / fmnist_a |" in text
    masked = "| **FAILED** | unbounded_eps | fmnist / masking / fmnist_a | fgsm at eps 1, threat pipeline"
    assert masked in text
