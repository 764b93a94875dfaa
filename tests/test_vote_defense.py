"""SFL-VAE + voting + the Bayesian update as one defense, end to end on real Fashion-MNIST."""

from __future__ import annotations

import pytest
import torch

from src.eval import evaluate
from src.report import report
from src.reporting.rows import read_rows
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError
from src.train import train
from tests.conftest import compose_cfg, install_target

VOTE = ["defense=sfl_vae_vote", "defense.voters=[fmnist_b,fmnist_c]", "defense.draws=2"]


def run(tmp, name: str, *overrides: str) -> dict:
    common = ["debug=smoke", "data.module.train_limit=6000", f"paths.output_dir={tmp}/{name}"]
    return train(compose_cfg("train", [*common, *overrides], tmp))


@pytest.fixture(scope="module")
def voting_setup(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vote")
    install_target(trained, tmp)
    run(tmp, "vae", "defense=sfl_vae", "defense.latent_dim=64", "trainer.max_epochs=3")
    for voter in ("fmnist_b", "fmnist_c"):
        run(tmp, voter, "task=retrain", "defense=sfl_vae", f"classifier={voter}", "trainer.max_epochs=2")
    tables = run(tmp, "tables", "task=tables", *VOTE)
    return tmp, tables["checkpoint"]


def test_tables_are_counted_on_the_training_split_and_saved(voting_setup):
    _, path = voting_setup
    assert path.endswith("fmnist/28px/sfl_vae_vote-tables-fmnist_a.ckpt")
    tables = checkpoints.load(path, "tables", "fmnist", (1, 28, 28))
    assert torch.allclose(tables.p_vote.sum(1), torch.ones(10))
    assert torch.allclose(tables.p_target.sum(2), torch.ones(10, 10))
    # 6,000 training images, plus one per class from add-one smoothing
    assert tables.class_frequency.min() > 1 / (6000 + 10) - 1e-9


def test_eval_reports_target_vote_and_bayes_reproducibly(voting_setup):
    tmp, _ = voting_setup
    overrides = ["debug=smoke", *VOTE, "attack=fgsm", "eval.eps=[0.3]"]
    (row,) = evaluate(compose_cfg("eval", overrides, tmp))
    for key in (
        "purified_clean_acc",
        "vote_clean_acc",
        "bayes_clean_acc",
        "adv_acc",
        "vote_acc",
        "bayes_acc",
    ):
        assert 0 <= row[key] <= 1
    assert row["vote_clean_acc"] > 0.4 and row["bayes_clean_acc"] > 0.4  # smoke-trained parts
    assert row["vote_acc"] < row["vote_clean_acc"]
    (again,) = evaluate(compose_cfg("eval", [*overrides, "eval.recompute=true"], tmp))
    assert (again["vote_acc"], again["bayes_acc"]) == (row["vote_acc"], row["bayes_acc"])  # seeded draws


def test_the_mean_individual_voter_stands_beside_the_vote(voting_setup):
    """The source's baseline for the vote's gain: each voter's own accuracy on the
    reconstructions, averaged (clean and attacked)."""
    from hydra.utils import instantiate

    from src.api import build_defense

    tmp, _ = voting_setup
    cfg = compose_cfg("eval", ["debug=smoke", *VOTE, "attack=fgsm", "eval.eps=[0.3]"], tmp)
    (row,) = evaluate(cfg)
    defense = build_defense(cfg.defense, "fmnist", None, cfg.paths.checkpoint_dir, (1, 28, 28), "fmnist_a")
    x, y = instantiate(cfg.data.module).test_tensors(cfg.eval.n)
    with torch.no_grad():
        x_hat = defense.purify(x)
        own = [(voter(x_hat).argmax(1) == y).float().mean().item() for voter in defense.voting.voters]
    assert row["voter_mean_clean_acc"] == pytest.approx(sum(own) / len(own), abs=1e-6)
    assert row["voter_mean_acc"] < row["voter_mean_clean_acc"]


def test_missing_tables_and_wrong_task_are_clear_errors(voting_setup, tmp_path):
    tmp, _ = voting_setup
    with pytest.raises(AdvPurifyError, match=r"no tables checkpoint .* task=tables"):
        evaluate(compose_cfg("eval", ["debug=smoke", *VOTE, "defense.name=uncounted_vote"], tmp))
    with pytest.raises(AdvPurifyError, match="voting defense"):
        train(compose_cfg("train", ["debug=smoke", "task=tables", "defense=sfl_vae"], tmp_path))


def test_eval_writes_the_voting_analysis_and_the_report_plots_it(voting_setup):
    tmp, _ = voting_setup
    overrides = ["debug=smoke", *VOTE, "attack=fgsm", "eval.eps=[0,0.3]", "eval.analyses=[vote_analysis]"]
    cfg = compose_cfg("eval", overrides, tmp)
    evaluate(cfg)
    rows = [
        r for r in read_rows(f"{cfg.paths.results_dir}/vote_analysis.csv") if r["defense"] == "sfl_vae_vote"
    ]
    got = {(r["eps"], r["metric"], r["voters"]) for r in rows}
    for eps in ("0.0", "0.3"):
        assert {(eps, "recovery_rate", "1"), (eps, "recovery_rate", "2"), (eps, "overlap_wrong", "2")} <= got
    assert all(0 <= float(r["value"]) <= 1 for r in rows)
    paths = cfg.paths
    md = report(paths.results_file, paths.report_dir)
    assert "Voting analysis: fmnist / sfl_vae_vote" in md.read_text()
    assert list(md.parent.glob("vote_analysis_fmnist_sfl_vae_vote_*.png"))


def test_voting_analysis_needs_a_voting_defense(trained):
    cfg = compose_cfg("eval", ["debug=smoke", "eval.analyses=[vote_analysis]"], trained["tmp"])
    with pytest.raises(AdvPurifyError, match="does not offer: it offers none"):
        evaluate(cfg)


def test_training_a_defense_without_weights_is_refused_and_replaces_nothing(trained, tmp_path):
    target = install_target(trained, tmp_path)
    before = target.read_bytes()
    cfg = compose_cfg("train", ["debug=smoke", "defense=sfl_vae_vote"], tmp_path)
    with pytest.raises(
        AdvPurifyError, match=r"defense=sfl_vae_vote has no weights of its own to train: train"
    ):
        train(cfg)
    assert target.read_bytes() == before
