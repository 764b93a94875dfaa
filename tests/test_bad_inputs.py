"""Bad inputs and faults, tried as a careless user and a hostile file would: each stops with one
line that says what to change, runs no code from a file, and writes or replaces nothing.

The closing note of issue 14 lists every case tried, before and after."""

from __future__ import annotations

import pathlib

import pytest
import torch

from src import checkpoints
from src.api import load_classifier
from src.errors import AdvPurifyError


class Planted:
    """Unpickling this creates a file: what a hostile checkpoint could do instead."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_none(tmp_path):
    planted = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"advpurify": Planted(planted), "state_dict": {}}, path)
    with pytest.raises(AdvPurifyError, match="refusing to unpickle it") as err:
        checkpoints.load(path, "classifier", "fmnist")
    assert str(path) in one_line(err)
    assert not planted.exists()


def test_a_checkpoint_naming_another_callable_is_refused(trained, tmp_path):
    good = torch.load(trained["ckpt"], weights_only=True)
    for key, value in [("class", "os.system"), ("class", "src.train.train"), ("class", "builtins.eval")]:
        bad = {**good, "advpurify": {**good["advpurify"], key: value}}
        path = tmp_path / "bad.ckpt"
        torch.save(bad, path)
        with pytest.raises(AdvPurifyError, match="refusing to build it") as err:
            load_classifier("fmnist", "fmnist_a", path)
        assert str(path) in one_line(err)


def test_hyperparameters_that_would_build_a_callable_are_refused(trained, tmp_path):
    good = torch.load(trained["ckpt"], weights_only=True)
    planted = tmp_path / "pwned"
    for target in ("os.system", "pathlib.Path.touch", "src.results.append_rows", "torch.load"):
        hparams = {**good["hyper_parameters"], "net": {"_target_": target, "path": str(planted)}}
        path = tmp_path / "bad.ckpt"
        torch.save({**good, "hyper_parameters": hparams}, path)
        with pytest.raises(AdvPurifyError, match="not an allowed class") as err:
            load_classifier("fmnist", "fmnist_a", path)
        assert str(path) in one_line(err)
    assert not planted.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "refusing to unpickle"),
        (b"not a checkpoint at all", "refusing to unpickle"),
    ],
)
def test_a_broken_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "broken.ckpt"
    path.write_bytes(content)
    with pytest.raises(AdvPurifyError, match=message) as err:
        checkpoints.load(path, "classifier", "fmnist")
    assert str(path) in one_line(err)


def test_a_truncated_checkpoint_is_a_clear_error(trained, tmp_path):
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(pathlib.Path(trained["ckpt"]).read_bytes()[:5000])
    with pytest.raises(AdvPurifyError, match="refusing to unpickle") as err:
        load_classifier("fmnist", "fmnist_a", path)
    one_line(err)


def test_foreign_and_mismatched_checkpoints_are_clear_errors(trained, tmp_path):
    good = torch.load(trained["ckpt"], weights_only=True)
    cases = [
        ({k: v for k, v in good.items() if k != "advpurify"}, "lacks the 'advpurify' entry"),
        (
            {**good, "advpurify": {**good["advpurify"], "kind": "defense"}},
            "holds a defense, not a classifier",
        ),
        ({**good, "advpurify": {**good["advpurify"], "data": "cifar10"}}, "trained on data=cifar10"),
        ({**good, "state_dict": {}}, "does not fit"),
        ({**good, "hyper_parameters": {"name": "fmnist_a"}}, "does not fit"),
    ]
    for content, message in cases:
        path = tmp_path / "other.ckpt"
        torch.save(content, path)
        with pytest.raises(AdvPurifyError, match=message) as err:
            load_classifier("fmnist", "fmnist_a", path)
        one_line(err)


# resuming a grid


def grid_cfg(trained, tmp, *overrides: str):
    from tests.conftest import compose_cfg

    common = [
        "debug=smoke",
        "attack=pgd",
        "attack.max_iter=5",
        "threat=classifier",
        f"ckpt={trained['ckpt']}",
    ]
    return compose_cfg("eval", [*common, *overrides], tmp)


def test_a_cell_computed_after_a_kill_equals_the_uninterrupted_one(trained, tmp_path):
    """PGD draws its random start from the cell's own seed, not from what ran before it."""
    from src.eval import evaluate

    whole = evaluate(grid_cfg(trained, tmp_path / "whole", "eval.eps=[0.05,0.1,0.2]"))
    evaluate(grid_cfg(trained, tmp_path / "killed", "eval.eps=[0.05]"))  # the grid stopped after one cell
    resumed = evaluate(grid_cfg(trained, tmp_path / "killed", "eval.eps=[0.05,0.1,0.2]"))
    measured = ("adv_acc", "l2_mean", "linf_max", "adv_recon_l2")
    assert [[r[k] for k in measured] for r in resumed] == [[r[k] for k in measured] for r in whole]


def _evaluate(cfg) -> None:
    from src.eval import evaluate

    evaluate(cfg)


def test_the_same_grid_started_twice_at_once_computes_each_cell_once(trained, tmp_path):
    import multiprocessing

    from src.results import read_rows

    cfg = grid_cfg(trained, tmp_path, "eval.eps=[0.1,0.2]")
    context = multiprocessing.get_context("spawn")
    jobs = [context.Process(target=_evaluate, args=(cfg,)) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=300)
    assert [job.exitcode for job in jobs] == [0, 0]
    rows = read_rows(cfg.paths.results_file)
    assert sorted(r["eps"] for r in rows) == ["0.1", "0.2"]


def test_the_fingerprint_follows_checkpoint_content_not_its_mtime(trained, tmp_path):
    import os
    import shutil

    from src.results import fingerprint

    copy = tmp_path / "fmnist_a.ckpt"
    shutil.copyfile(trained["ckpt"], copy)
    before = fingerprint({}, [copy])
    os.utime(copy, (0, 0))  # touched, same content: the finished cells still count
    assert fingerprint({}, [copy]) == before
    with open(copy, "ab") as f:  # other content (a retrained model): recomputed
        f.write(b"\0")
    assert fingerprint({}, [copy]) != before


def test_a_voting_defense_fingerprint_covers_its_voters_and_tables(tmp_path):
    from src.eval import run_fingerprint
    from tests.conftest import compose_cfg

    vote = ["defense=sfl_vae_vote", "defense.voters=[fmnist_b,fmnist_c]"]
    cfg = compose_cfg("eval", vote, tmp_path)
    before = run_fingerprint(cfg, "fmnist", "fmnist_a")
    for name in ("fmnist_c+sfl_vae", "sfl_vae_vote-tables-fmnist_a", "sfl_vae"):
        path = tmp_path / "checkpoints" / "fmnist" / f"{name}.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        after = run_fingerprint(cfg, "fmnist", "fmnist_a")
        assert after != before, name
        before = after


def test_a_results_folder_that_cannot_be_written_stops_before_any_cell(trained, tmp_path):
    from src.eval import evaluate

    blocker = tmp_path / "a_file"
    blocker.write_text("results cannot live under a file, whoever runs this")
    cfg = grid_cfg(trained, tmp_path, f"paths.results_dir={blocker}/results")
    with pytest.raises(AdvPurifyError, match=r"paths\.results_dir=.* is not writable") as err:
        evaluate(cfg)
    one_line(err)
    assert blocker.read_text().startswith("results cannot")


# training


def test_a_diverged_run_stops_with_a_message_and_publishes_nothing(trained, tmp_path):
    from src.train import train
    from tests.conftest import compose_cfg, install_target

    target = install_target(trained, tmp_path)
    before = target.read_bytes()
    cfg = compose_cfg("train", ["debug=smoke", "classifier.optimizer.lr=1e12"], tmp_path)
    with pytest.raises(AdvPurifyError, match=r"training diverged and nothing was published") as err:
        train(cfg)
    one_line(err)
    assert target.read_bytes() == before  # the good model stays


def test_training_killed_mid_run_resumes_to_the_same_epoch_count(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from src.train import train
    from tests.conftest import ROOT, compose_cfg

    overrides = ["debug=smoke", "data.module.train_limit=6000", "trainer.max_epochs=4", "logger=none"]
    paths = [f"paths.checkpoint_dir={tmp_path}/checkpoints", f"hydra.run.dir={tmp_path}/run"]
    job = subprocess.Popen(
        [sys.executable, "-m", "src.train", *overrides, *paths],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs = tmp_path / "checkpoints" / "runs" / "fmnist"
    deadline = time.time() + 240
    while not list(runs.glob("*/last.ckpt")) and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    os.kill(job.pid, signal.SIGKILL)  # kill -9 after the first epoch's checkpoint
    job.wait()
    (last,) = runs.glob("*/last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] < 3  # it really stopped early

    cfg = compose_cfg("train", [*overrides, f"paths.checkpoint_dir={tmp_path}/checkpoints"], tmp_path)
    with pytest.raises(AdvPurifyError, match="continue it with resume=true") as err:
        train(cfg)  # a fresh run does not bury the interrupted one
    one_line(err)
    cfg.resume = True
    metrics = train(cfg)
    assert metrics["epochs"] == 4
    assert not last.parent.exists()  # published, so the run's folder is gone
    with pytest.raises(AdvPurifyError, match="no interrupted run"):
        train(cfg)


# data


def test_a_corrupted_dataset_cache_is_rebuilt_not_trusted(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    cfg = compose_cfg("train", [f"paths.cache_dir={tmp_path}/cache"], tmp_path)
    x, y = instantiate(cfg.data.module).test_tensors(500)
    cached = tmp_path / "cache" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    damaged = bytearray(cached.read_bytes())
    damaged[5000:5100] = bytes(100)  # a hundred pixels of the first test images zeroed
    cached.write_bytes(bytes(damaged))
    x_again, y_again = instantiate(cfg.data.module).test_tensors(500)
    assert torch.equal(x_again, x) and torch.equal(y_again, y)
