"""Evaluation on real data: attacks cut accuracy, rows are complete, bad inputs fail clearly."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hydra.utils import instantiate

from src.defenses.none import NoDefense
from src.eval import evaluate
from src.evaluation.grids import grid_images
from src.report import report
from src.reporting.grids import ROWS, grid_path
from src.reporting.rows import COLUMNS, read_rows
from src.runtime.errors import AdvPurifyError, build
from tests.conftest import ROOT, compose_cfg


def run(trained, tmp_path, *overrides):
    return evaluate(compose_cfg("eval", ["debug=smoke", f"ckpt={trained['ckpt']}", *overrides], tmp_path))


def test_fgsm_at_03_cuts_accuracy_far_below_clean(trained, tmp_path):
    rows = run(trained, tmp_path, "attack=fgsm", "eval.eps=[0.05,0.3]", "eval.n=256")
    low, high = rows
    assert high["clean_acc"] > 0.7
    assert high["adv_acc"] < 0.25 * high["clean_acc"]
    assert high["adv_acc"] <= low["adv_acc"] < low["clean_acc"]
    assert abs(high["linf_max"] - 0.3) < 1e-5
    assert high["purified_clean_acc"] == high["clean_acc"]  # defense=none is the identity
    assert high["clean_recon_l1_255"] == 0
    # With nothing purified, the distance to the clean image is the perturbation itself.
    assert high["adv_recon_l2"] == pytest.approx(high["l2_mean"], rel=1e-5)
    assert 255 * high["adv_recon_l2"] <= high["adv_recon_l1_255"] <= 255 * 0.3 * 784  # L2 <= L1 <= eps * d


def test_rows_have_every_column_and_reach_the_table(trained, tmp_path):
    rows = run(trained, tmp_path, "attack=pgd", "eval.eps=[0,0.1]", "eval.n=64")
    table = read_rows(tmp_path / "results" / "results.csv")
    assert len(table) == 2 and tuple(table[0]) == COLUMNS
    for row in rows:
        assert set(row) == set(COLUMNS)
        for key in ("clean_acc", "purified_clean_acc", "adv_acc"):
            assert 0 <= row[key] <= 1
    assert rows[0]["adv_acc"] == rows[0]["clean_acc"] and rows[0]["l2_mean"] == 0  # eps 0 is clean
    assert rows[1]["adv_acc"] < rows[1]["clean_acc"]


def test_minimal_norm_attack_never_raises_accuracy(trained, tmp_path):
    rows = run(trained, tmp_path, "attack=deepfool", "eval.eps=[0.5,2.0,10.0]", "eval.n=32")
    accs = [r["adv_acc"] for r in rows]
    assert accs == sorted(accs, reverse=True) and accs[0] <= rows[0]["clean_acc"]
    assert accs[-1] < 0.2 * rows[0]["clean_acc"]
    assert all(r["l2_mean"] <= r["eps"] for r in rows)


@pytest.mark.parametrize("eps", ["[-0.1]", "[]", "[2.0]"])
def test_bad_eps_is_a_clear_error(trained, tmp_path, eps):
    with pytest.raises(AdvPurifyError, match=r"eval\.eps"):
        run(trained, tmp_path, f"eval.eps={eps}")


def test_missing_checkpoint_says_how_to_train_it(tmp_path):
    cfg = compose_cfg("eval", ["debug=smoke"], tmp_path)
    with pytest.raises(
        AdvPurifyError, match=r"python -m src\.train data=fmnist data\.image_size=28 classifier=fmnist_a"
    ):
        evaluate(cfg)


def test_incompatible_checkpoint_is_a_clear_error(trained, tmp_path):
    with pytest.raises(AdvPurifyError, match=r"data\.image_size=28"):
        run(trained, tmp_path, "data.image_size=32")
    with pytest.raises(AdvPurifyError, match="holds classifier fmnist_a, not fmnist_b"):
        run(trained, tmp_path, "classifier=fmnist_b")


def test_cli_multirun_over_attacks_and_clean_error_for_negative_eps(trained, tmp_path):
    common = [
        "debug=smoke",
        "logger=none",
        f"ckpt={trained['ckpt']}",
        f"paths.results_file={tmp_path}/r.csv",
        f"hydra.sweep.dir={tmp_path}/multirun",
        "eval.n=64",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "src.eval", "-m", "attack=fgsm,bim", *common],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_rows(tmp_path / "r.csv")
    assert sorted({r["attack"] for r in rows}) == ["bim", "fgsm"] and len(rows) == 4
    proc = subprocess.run(
        [sys.executable, "-m", "src.eval", "eval.eps=[-0.1]", *common[:-1]],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "error: eval.eps holds -0.1: budgets must be >= 0" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_rerun_skips_finished_cells_and_resumes_the_rest(trained, tmp_path):
    common = ["debug=smoke", f"ckpt={trained['ckpt']}", "attack=fgsm"]
    results = tmp_path / "results" / "results.csv"
    first = evaluate(compose_cfg("eval", [*common, "eval.eps=[0.1]"], tmp_path))  # a sweep killed here
    again = evaluate(compose_cfg("eval", [*common, "eval.eps=[0.1,0.3]"], tmp_path))
    assert [r["eps"] for r in read_rows(results)] == ["0.1", "0.3"]  # nothing recomputed, nothing lost
    assert again[0] == {**first[0], "eps": 0.1} and again[1]["eps"] == 0.3
    changed = evaluate(compose_cfg("eval", [*common, "eval.eps=[0.1]", "attack.batch_size=64"], tmp_path))
    assert len(read_rows(results)) == 3 and changed[0]["fingerprint"] != first[0]["fingerprint"]
    evaluate(compose_cfg("eval", [*common, "eval.eps=[0.1]", "eval.recompute=true"], tmp_path))
    assert len(read_rows(results)) == 4


def test_wandb_gets_the_rows_as_a_table_the_accuracy_chart_and_the_image_grids(trained, tmp_path):
    overrides = ["debug=smoke", f"ckpt={trained['ckpt']}", "attack=fgsm", "logger=wandb"]
    evaluate(compose_cfg("eval", overrides, tmp_path))
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    tables = list(run.glob("files/media/table/*.table.json"))
    assert any(t.name.startswith("results") for t in tables), [t.name for t in tables]
    text = next(t for t in tables if t.name.startswith("results")).read_text()
    assert '"adv_acc"' in text and '"fingerprint"' in text
    grids = sorted(p.name for p in run.glob("files/media/images/grid/*.png"))
    assert [name.split("_")[:2] for name in grids] == [["fgsm", "eps0.1"], ["fgsm", "eps0.3"]], grids


def test_each_cell_leaves_its_image_grid_and_the_report_shows_it(trained, tmp_path):
    rows = evaluate(compose_cfg("eval", ["debug=smoke", f"ckpt={trained['ckpt']}", "attack=fgsm"], tmp_path))
    for row in rows:
        picture = plt.imread(grid_path(tmp_path / "results", row))
        assert picture.shape[0] > 4 * 28 and picture.shape[1] > 8 * 28  # four rows of eight images
    text = report(tmp_path / "results" / "results.csv", tmp_path / "results").read_text()
    link = "grids/fmnist/none/fmnist_a_fgsm_classifier_eps0.3.png"
    assert f"![fmnist none fmnist_a fgsm classifier]({link})" in text


def test_a_second_seed_draws_its_grid_beside_the_first_seeds_and_leaves_it(trained, tmp_path):
    common = ["debug=smoke", f"ckpt={trained['ckpt']}", "attack=fgsm", "eval.eps=[0.3]"]
    (first,) = [r for r in evaluate(compose_cfg("eval", common, tmp_path)) if float(r["eps"]) == 0.3]
    first_grid = grid_path(tmp_path / "results", first)
    drawn = first_grid.read_bytes()
    (second,) = [
        r for r in evaluate(compose_cfg("eval", [*common, "seed=1"], tmp_path)) if float(r["eps"]) == 0.3
    ]
    second_grid = grid_path(tmp_path / "results", second)
    assert second_grid.name == first_grid.name.replace(".png", "-seed1.png") and second_grid.exists()
    assert first_grid.read_bytes() == drawn


def test_a_grid_shows_x_its_purification_x_adv_and_its_purification_row_by_row(tmp_path):
    x = build(compose_cfg("eval", ["debug=smoke"], tmp_path).data.module).test_tensors(8)[0]
    picture = grid_images(NoDefense(), x, x)  # the identity at eps 0: every row is x
    assert picture.shape == (len(ROWS) * 30 + 2, 8 * 30 + 2, 3)  # 28px tiles, 2px gutters

    def tile_row(i: int):
        return picture[2 + 30 * i : 30 + 30 * i]

    assert all(np.array_equal(tile_row(0), tile_row(i)) for i in range(1, len(ROWS)))
    assert tile_row(0).std() > 0


def test_wandb_mode_follows_the_environment_and_lightning_does_not_override_it(monkeypatch, tmp_path):
    # Lightning's `offline: true` sets WANDB_MODE=dryrun itself; the mode must reach wandb.init instead
    for env, mode in ((None, "offline"), ("online", "online"), ("disabled", "disabled")):
        if env is None:
            monkeypatch.delenv("WANDB_MODE", raising=False)
        else:
            monkeypatch.setenv("WANDB_MODE", env)
        logger = instantiate(compose_cfg("eval", ["logger=wandb"], tmp_path).logger.wandb)
        assert logger._wandb_init["mode"] == mode and not logger._offline


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_run_a_sweep_and_a_rerun_resumes_it(launcher, trained, tmp_path):
    common = [
        "debug=smoke",
        "logger=none",
        f"ckpt={trained['ckpt']}",
        f"paths.results_file={tmp_path}/r.csv",
        f"hydra.sweep.dir={tmp_path}/multirun",
        f"launcher={launcher}",
        "eval.n=32",
        "attack=fgsm,bim",
    ]
    for _ in range(2):  # the second sweep finds every cell done
        proc = subprocess.run(
            [sys.executable, "-m", "src.eval", "-m", *common], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = read_rows(tmp_path / "r.csv")
    assert sorted((r["attack"], r["eps"]) for r in rows) == [
        ("bim", "0.1"),
        ("bim", "0.3"),
        ("fgsm", "0.1"),
        ("fgsm", "0.3"),
    ]
