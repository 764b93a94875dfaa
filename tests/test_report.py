"""The report turns the results table into plots and a markdown table."""

from __future__ import annotations

import pytest

from src.report import report
from src.reporting.rows import COLUMNS, append_rows
from src.runtime.errors import AdvPurifyError


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


@pytest.fixture
def published(tmp_path):
    from omegaconf import OmegaConf

    from tests.conftest import compose_cfg

    return OmegaConf.to_container(compose_cfg("report", [], tmp_path).published, resolve=True)


def test_the_published_numbers_compose_from_spec_section_5(published):
    assert published["clean"]["fmnist"]["vqunet"] == 93.39
    assert published["clean"]["cifar10"]["defense_vae"] == 78.84
    assert published["attacked"]["cifar10"]["cyclegan"] == {"at_least": 80, "attacks": ["bim", "pgd", "cw"]}


def test_reproduction_tables_judge_each_claim_per_threat(tmp_path, published):
    results = tmp_path / "results.csv"
    grid = [(a, e) for a in ("fgsm", "bim", "pgd", "cw") for e in (0.1, 0.3)]
    rows = [row("vqunet", a, e, 0.95) for a, e in grid]
    rows.append(row("vqunet", "pgd", 0.3, 0.85))  # the lowest: the claim (>= 90) fails there
    rows.append(row("vqunet", "fgsm", 0.5, 0.01))  # beyond max_eps: not the claim's range
    rows += [{**row("vqunet", "fgsm", 0.1, 0.2), "threat": "pipeline"}]  # one attack: fails already
    rows += [{**row("vqunet", "pgd", 0.1, 0.95), "threat": "transfer"}]  # one attack: holds so far
    rows += [{**row("none", a, e, 0.3 if e < 0.3 else 0.05), "purified_clean_acc": 0.91} for a, e in grid]
    rows += [{**row("none", "fgsm", 0.3, 0.5), "threat": "pipeline"}]  # a `below` claim failing on one attack
    append_rows(results, rows)
    text = report(results, tmp_path / "out", published=published).read_text()
    table = text[text.index("### fmnist") :]
    vqunet = next(line for line in table.splitlines() if line.startswith("| vqunet | fmnist_a"))
    cells = [c.strip() for c in vqunet.split("|")[1:-1]]
    assert cells[2:5] == ["93.39", "90.00", ">= 90 under fgsm, bim, pgd, cw"]
    assert cells[5] == "85.0 (pgd 0.3) **fails**"
    assert cells[6] == "-"  # paper not run
    assert cells[7] == "20.0 (fgsm 0.1) **fails** (bim, pgd, cw not run)"  # more attacks cannot save it
    assert cells[8] == "needs fgsm, bim, cw"  # holding on pgd alone is no verdict
    none = next(line for line in table.splitlines() if line.startswith("| none | fmnist_a"))
    assert "91.00" in none and "5.0 (" in none and "holds" in none
    assert "| 50.0 (fgsm 0.3) **fails** (bim, pgd, cw not run) |" in none
    assert "| cyclegan | - | 93.13 | not run |" in table  # published, not run here: still listed
    assert "### cifar10" in text


def test_published_levels_cover_only_at_least_claims(published):
    from src.report import published_levels

    levels = published_levels(published, "fmnist")
    assert levels["pgd"] == {"vqunet": 90, "cyclegan": 90, "sfl_vae_vote": 93}
    assert "none" not in levels["pgd"]  # a `below` claim draws no level


def test_curves_never_mix_n_seeds_or_models(tmp_path):
    results = tmp_path / "results.csv"
    old = [{**row("vqunet", "pgd", e, 0.9), "models": "old"} for e in (0.1, 0.3)]
    new = [{**row("vqunet", "pgd", 0.1, 0.4), "models": "new", "seed": s} for s in (0, 1)]
    new[1]["adv_acc"] = 0.6  # seed 1 of the retrained model
    bigger = [{**row("vqunet", "pgd", 0.1, 0.2), "models": "new", "n": 1000}]
    append_rows(results, [*old, *new, *bigger])
    text = report(results, tmp_path / "out").read_text()
    # the retrained model's curve: seeds 0 and 1 averaged, its stale eps 0.3 cell dropped
    assert "| vqunet (n=0) (mean of 2 seeds) | pgd | 90.00 | 50.00 |\n" in text
    assert "| vqunet (n=1000) | pgd | 90.00 | 20.00 |\n" in text
    assert "eps 0.3" not in text
    assert "| fmnist | vqunet | fmnist_a | classifier | pgd | 0.1 | 0 | 2 | 50.00 ± 10.00 |" in text
