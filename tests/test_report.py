"""The report turns the results table into plots and a markdown table."""

from __future__ import annotations

import pytest

from src.errors import AdvPurifyError
from src.report import report
from src.results import COLUMNS, append_rows


def row(defense: str, attack: str, eps: float, adv: float) -> dict:
    return {
        **dict.fromkeys(COLUMNS, 0),
        "data": "fmnist",
        "classifier": "fmnist_a",
        "threat": "classifier",
        "defense": defense,
        "attack": attack,
        "eps": eps,
        "adv_acc": adv,
        "purified_clean_acc": 0.9,
    }


def test_report_writes_png_and_table(tmp_path):
    results = tmp_path / "results.csv"
    append_rows(
        results,
        [
            row(d, a, e, acc)
            for d in ("none", "vqunet")
            for a in ("fgsm", "pgd")
            for e, acc in ((0.1, 0.5), (0.3, 0.1))
        ],
    )
    append_rows(results, [row("none", "fgsm", 0.3, 0.05)])  # a rerun: the latest row wins
    path = report(results, tmp_path / "out")
    png = tmp_path / "out" / "fmnist_fmnist_a_classifier.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = path.read_text()
    assert "| none | fgsm | 90.00 | 50.00 | 5.00 |" in text
    assert "| vqunet | pgd | 90.00 | 50.00 | 10.00 |" in text


def test_report_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(AdvPurifyError, match=r"run `python -m src\.eval` first"):
        report(tmp_path / "missing.csv", tmp_path)


def test_report_rebuilds_table_4_1_from_the_rows(tmp_path):
    results = tmp_path / "results.csv"
    fidelity = {"vae": 126.0, "cyclegan": 54.3, "cyclegan_skip1": 103.9}
    append_rows(results, [{**row(d, "fgsm", 0.1, 0.5), "clean_recon_l1_255": v} for d, v in fidelity.items()])
    text = report(results, tmp_path / "out").read_text()
    assert "Reconstruction fidelity, fmnist (Table 4.1)" in text
    table = text[text.index("| defense | L1 |") :].splitlines()[2:5]
    assert table == ["| cyclegan | 54.3 |", "| cyclegan_skip1 | 103.9 |", "| vae | 126.0 |"]


def test_a_voting_defense_gets_a_line_per_decision(tmp_path):
    results = tmp_path / "results.csv"
    voted = {"vote_clean_acc": 0.8, "vote_acc": 0.4, "bayes_clean_acc": 0.85, "bayes_acc": 0.45}
    append_rows(results, [{**row("sfl_vae_vote", "fgsm", 0.3, 0.3), **voted}])
    text = report(results, tmp_path / "out").read_text()
    assert "| sfl_vae_vote | fgsm | 90.00 | 30.00 |" in text
    assert "| sfl_vae_vote vote | fgsm | 80.00 | 40.00 |" in text
    assert "| sfl_vae_vote bayes | fgsm | 85.00 | 45.00 |" in text
