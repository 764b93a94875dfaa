"""Bad inputs and faults, tried as a careless user and a hostile file would: each stops with one
line that says what to change, runs no code from a file, and writes or replaces nothing."""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

from src.api import load_classifier
from src.runtime import checkpoints
from src.runtime.errors import AdvPurifyError


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


ATTRIBUTE_PATHS = (
    # each starts with an allowed name and walks on through a module that one imports
    "torch.optim.adam.torch.storage.io.FileIO",
    "torch.optim.adam.torch.ctypes.util.subprocess.Popen",
    "src.classifiers.target.torch.storage.io.FileIO",
    "src.attacks.base.torch.storage.io.FileIO",
    "torch.optim.Adam.__init__.__globals__",
)


@pytest.mark.parametrize(
    "target",
    ["os.system", "pathlib.Path.touch", "src.reporting.rows.append_rows", "torch.load", *ATTRIBUTE_PATHS],
)
@pytest.mark.parametrize("place", ["net", "optimizer"])
def test_hyperparameters_that_would_build_anything_but_a_known_class_are_refused(
    trained, tmp_path, target, place
):
    """A crafted checkpoint that asks for FileIO in write mode would truncate `victim`."""
    good = torch.load(trained["ckpt"], weights_only=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("a finished result")
    node = {"_target_": target, "file": str(victim), "mode": "w", "args": ["touch", str(victim)]}
    path = tmp_path / "bad.ckpt"
    torch.save({**good, "hyper_parameters": {**good["hyper_parameters"], place: node}}, path)
    with pytest.raises(AdvPurifyError, match="refusing to load it") as err:
        load_classifier("fmnist", "fmnist_a", path)
    assert str(path) in one_line(err)
    assert victim.read_text() == "a finished result"


def test_the_classes_a_config_names_are_still_buildable():
    for target in (
        "torch.optim.Adam",
        "torch.optim.SGD",
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "src.classifiers.target.FmnistA",
        "src.classifiers.densenet.DenseNet",
        "src.attacks.pgd.PGD",
    ):
        checkpoints.check_targets({"_target_": target}, pathlib.Path("x.ckpt"))


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

    from src.reporting.rows import read_rows

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

    from src.reporting.rows import fingerprint

    copy = tmp_path / "fmnist_a.ckpt"
    shutil.copyfile(trained["ckpt"], copy)
    before = fingerprint({}, [copy])
    os.utime(copy, (0, 0))  # touched, same content: the finished cells still count
    assert fingerprint({}, [copy]) == before
    with open(copy, "ab") as f:  # other content (a retrained model): recomputed
        f.write(b"\0")
    assert fingerprint({}, [copy]) != before


def test_a_voting_defense_fingerprint_covers_its_voters_and_tables(tmp_path):
    from src.evaluation.fingerprints import run_fingerprint
    from tests.conftest import compose_cfg

    vote = ["defense=sfl_vae_vote", "defense.voters=[fmnist_b,fmnist_c]"]
    cfg = compose_cfg("eval", vote, tmp_path)
    before = run_fingerprint(cfg, "fmnist", "fmnist_a", (1, 28, 28))[0]
    for name in ("fmnist_c+sfl_vae", "sfl_vae_vote-tables-fmnist_a", "sfl_vae"):
        path = tmp_path / "checkpoints" / "fmnist" / "28px" / f"{name}.ckpt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
        after = run_fingerprint(cfg, "fmnist", "fmnist_a", (1, 28, 28))[0]
        assert after != before, name
        before = after


@pytest.mark.parametrize("key", ["paths.results_dir", "paths.crafted_dir"])
def test_a_folder_that_cannot_be_written_stops_before_any_cell_and_the_named_fix_works(
    trained, tmp_path, key
):
    from src.eval import evaluate

    blocker = tmp_path / "a_file"
    blocker.write_text("nothing can live under a file, whoever runs this")
    cfg = grid_cfg(trained, tmp_path, f"{key}={blocker}/sub")
    with pytest.raises(AdvPurifyError, match=rf"{re.escape(key)}=.* is not writable") as err:
        evaluate(cfg)
    one_line(err)
    assert "set " + key + "= to a folder you can write" in str(err.value)
    assert blocker.read_text().startswith("nothing can")
    fixed = grid_cfg(trained, tmp_path, f"{key}={tmp_path}/writable", "eval.eps=[0.1]")
    assert len(evaluate(fixed)) == 1


def test_crafting_in_parts_without_a_folder_to_keep_them_is_refused_and_the_named_fix_works(
    trained, tmp_path
):
    from src.eval import evaluate
    from src.evaluation.fingerprints import run_fingerprint

    fix = r"set paths\.crafted_dir=<folder>, or eval\.part_size=null"
    with pytest.raises(AdvPurifyError, match=fix) as err:
        evaluate(grid_cfg(trained, tmp_path, "eval.part_size=16", "eval.eps=[0.1]"))
    one_line(err)
    kept = ["eval.part_size=16", "eval.eps=[0.1]", f"paths.crafted_dir={tmp_path}/crafted"]
    parted = grid_cfg(trained, tmp_path, *kept)
    (row,) = evaluate(parted)
    whole = grid_cfg(trained, tmp_path, "eval.eps=[0.1]")  # its rows are not the parted cell's
    cell = (row["data"], row["classifier"], (1, 28, 28))
    assert row["fingerprint"] == run_fingerprint(parted, *cell)[0] != run_fingerprint(whole, *cell)[0]


# training


def test_a_diverged_run_stops_with_a_message_and_publishes_nothing(trained, tmp_path):
    from src.train import train
    from tests.conftest import compose_cfg, install_target

    target = install_target(trained, tmp_path)
    before = target.read_bytes()
    diverging = ["debug=smoke", "classifier.optimizer.lr=1e12"]
    with pytest.raises(AdvPurifyError, match=r"trained otherwise .*classifier.name=<name>"):
        train(compose_cfg("train", diverging, tmp_path))  # not over the good model, not even to try
    cfg = compose_cfg("train", [*diverging, "classifier.name=fmnist_a_lr1e12"], tmp_path)
    with pytest.raises(AdvPurifyError, match=r"training diverged and nothing was published") as err:
        train(cfg)
    one_line(err)
    assert target.read_bytes() == before  # the good model stays
    assert not target.with_name("fmnist_a_lr1e12.ckpt").exists()


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


# configs: every number checked at startup, nothing written


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.n=0"], r"eval\.n=0: it must be a whole number >= 1"),
        (["eval.n=-3"], r"eval\.n=-3"),
        (["eval.n=1.5"], r"eval\.n=1\.5"),
        (["eval.n=100000"], r"eval\.n=100000 exceeds the 256 test images: set eval\.n=256"),
        (["eval.batch_size=0"], r"eval\.batch_size=0"),
        (["eval.part_size=0"], r"eval\.part_size=0: it must be a whole number >= 1"),
        (["eval.part_size=0"], r"eval\.part_size=0: it must be a whole number >= 1"),
        (["data.module.eval_batch_size=-1"], r"data\.module\.eval_batch_size=-1"),
        (["attack=pgd", "attack.max_iter=0"], r"attack\.max_iter=0"),
        (["attack=pgd", "attack.rel_step=0"], r"attack\.rel_step=0"),
        (["attack=bim", "attack.batch_size=0"], r"attack\.batch_size=0"),
        (["attack=cw_art", "attack.learning_rate=-0.1"], r"attack\.learning_rate=-0\.1"),
        (["attack=cw", "attack.backend=art"], r"attack=cw \(PGD on the CW margin\) has no ART counterpart"),
        (["attack=deepfool", "attack.nb_grads=1"], r"attack\.nb_grads=1"),
        (["attack=fgsm", "attack.norm=3"], r"attack\.norm=3: it must be inf or 2"),
        (["threat=pipeline", "threat.eot_samples=0"], r"threat\.eot_samples=0"),
        (["threat=transfer", "threat.mix=1.5"], r"threat\.mix=1\.5"),
        (["threat=paper", "threat.white_box=surrogate"], r"threat\.white_box='surrogate': it must be one of"),
        (["attack=pgd_cleverhans", "attack.step=0"], r"attack\.step=0: it must be a finite number > 0"),
        (["attack=autoattack", "attack.version=fast"], r"attack\.version='fast': it must be one of"),
        (["attack=autoattack", "attack.version=custom"], r"version=custom needs a non-empty list"),
        (["defense=defense_gan", "defense.restarts=0"], r"defense\.restarts=0"),
        (["eval.eps=[-0.1]"], r"eval\.eps holds -0\.1: budgets must be >= 0"),
        (["eval.eps=[2]"], r"eval\.eps holds 2"),
        (["eval.eps=[]"], r"eval\.eps is empty"),
        (
            ["eval.analyses=[vq_analysis]"],
            r"eval\.analyses names vq_analysis, which defense=none does not offer",
        ),
        (["eval.analyses=vq_analysis"], r"eval\.analyses='vq_analysis' must be a list"),
        (["eval.recompute=maybe"], r"eval\.recompute='maybe': it must be true or false"),
    ],
)
def test_every_bad_eval_setting_stops_at_startup_and_writes_nothing(trained, tmp_path, overrides, message):
    from src.eval import evaluate
    from tests.conftest import compose_cfg

    cfg = compose_cfg("eval", ["debug=smoke", f"ckpt={trained['ckpt']}", *overrides], tmp_path)
    with pytest.raises(AdvPurifyError, match=message) as err:
        evaluate(cfg)
    one_line(err)
    assert not pathlib.Path(cfg.paths.results_file).exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epochs=0"], r"trainer\.max_epochs=0"),
        (["data.module.batch_size=0"], r"data\.module\.batch_size=0"),
        (["classifier.optimizer.lr=0"], r"classifier\.optimizer\.lr=0"),
        (["defense=vqunet", "defense.width=0"], r"defense\.width=0"),
        (["defense=sfl_vae", "defense.kl_weight=-1"], r"defense\.kl_weight=-1"),
        (["defense=sfl_vae", "defense.rec_weight=-1"], r"defense\.rec_weight=-1"),
        (["defense=cyclegan", "defense.identity_weight=-1"], r"defense\.identity_weight=-1"),
        (["defense=sfl_vae", "defense.decoder_width=0"], r"defense\.decoder_width=0"),
        (["logger=wandb", "logger.wandb.mode=onlin"], r"logger\.wandb\.mode='onlin': choose one of"),
        (["defense=vqunet", "defense.ema_omega=1.5"], r"defense\.ema_omega=1\.5"),
        (["task=typo"], r"task=typo is unknown"),
        (["resume=maybe"], r"resume='maybe': it must be true or false"),
        (["task=retrain"], r"task=retrain trains on a trained purifier's outputs"),
        (["task=tables"], r"task=tables counts a voting defense's tables"),
        (["callbacks.model_checkpoint.save_last=true"], r"save_last=True: .* set it to false"),
    ],
)
def test_every_bad_training_setting_stops_and_publishes_nothing(tmp_path, overrides, message):
    from src.train import train
    from tests.conftest import compose_cfg

    cfg = compose_cfg("train", ["debug=smoke", *overrides], tmp_path)
    with pytest.raises(AdvPurifyError, match=message) as err:
        train(cfg)
    one_line(err)
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").rglob("*.ckpt"))


# the Python API


def test_the_api_checks_its_inputs(trained):
    from src.api import defended, load_classifier, load_defense

    classifier = load_classifier("fmnist", "fmnist_a", trained["ckpt"])
    model = defended(classifier, load_defense("fmnist", "none"))
    good = torch.rand(2, 1, 28, 28)
    assert model(good).shape == (2, 10)
    cases = [
        (good.numpy(), "give a torch tensor"),
        ((good * 255).to(torch.uint8), r"dtype torch\.uint8: give float pixels"),
        (good[0], r"shape \(1, 28, 28\): give a batch"),
        (torch.rand(2, 3, 28, 28), r"shape \(3, 28, 28\), but the model takes \(1, 28, 28\)"),
        (torch.rand(2, 1, 32, 32), r"but the model takes \(1, 28, 28\)"),
        (good * float("nan"), "NaN or inf"),
        (good * 255, r"pixels in \[0, 1\]"),
        (good - 0.5, r"pixels in \[0, 1\]"),
    ]
    for x, message in cases:
        with pytest.raises(AdvPurifyError, match=message) as err:
            model(x)
        one_line(err)


def test_defended_refuses_a_classifier_and_purifier_of_different_sizes(trained, trained32):
    from src.api import defended, load_classifier

    classifier = load_classifier("fmnist", "fmnist_a", trained["ckpt"])
    purifier = checkpoints.load(trained32["defense_ckpt"], "defense", "fmnist")
    with pytest.raises(AdvPurifyError, match=r"\(1, 28, 28\) but the purifier \(1, 32, 32\)") as err:
        defended(classifier, purifier)
    one_line(err)


def test_unknown_names_in_the_api_list_the_choices():
    from src.api import load_defense

    with pytest.raises(AdvPurifyError, match=r"unknown defense 'vqunett': choose one of \[.*'vqunet'"):
        load_defense("fmnist", "vqunett")


def test_the_cli_reports_a_bad_setting_inside_a_config_target_as_one_line(tmp_path):
    """Hydra wraps what a target raises; the entry point still prints just the user's line."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    command = [sys.executable, "-m", "src.eval", "attack=deepfool", "attack.nb_grads=1", "logger=none"]
    done = subprocess.run(
        [*command, f"paths.results_dir={tmp_path}/results", f"hydra.run.dir={tmp_path}/run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "attack.nb_grads=1: DeepFool needs nb_grads >= 2" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_padded_run_or_another_seed_never_replaces_a_published_model(trained, tmp_path):
    from src.train import train
    from tests.conftest import compose_cfg, install_target

    target = install_target(trained, tmp_path)
    before = target.read_bytes()
    padded = train(compose_cfg("train", ["debug=smoke", "data.image_size=32"], tmp_path))
    reseeded = train(compose_cfg("train", ["debug=smoke", "seed=1"], tmp_path))
    assert padded["checkpoint"].endswith("fmnist/32px/fmnist_a.ckpt")
    assert reseeded["checkpoint"].endswith("fmnist/28px/fmnist_a-seed1.ckpt")
    assert target.read_bytes() == before
    with pytest.raises(AdvPurifyError, match=r"several image sizes \(28px, 32px\)") as err:
        load_classifier("fmnist", "fmnist_a", checkpoint_dir=tmp_path / "checkpoints")
    one_line(err)
    assert load_classifier("fmnist", "fmnist_a", None, tmp_path / "checkpoints", (1, 32, 32)) is not None


def test_the_command_a_missing_model_error_suggests_publishes_that_model(trained, tmp_path):
    """Followed to the letter (with the test's own folders and debug=smoke), the fix works."""
    import re
    import shlex

    from src.eval import evaluate
    from src.train import train
    from tests.conftest import compose_cfg

    folders = [f"paths.checkpoint_dir={tmp_path}/checkpoints", f"paths.results_dir={tmp_path}/results"]
    missing = compose_cfg("eval", ["debug=smoke", "data.image_size=32", *folders], tmp_path)
    with pytest.raises(AdvPurifyError, match="train it with") as err:
        evaluate(missing)
    command = re.search(r"`python -m src.train (.*?)`", one_line(err)).group(1)
    train(compose_cfg("train", ["debug=smoke", *shlex.split(command), *folders], tmp_path))
    assert evaluate(missing)  # the model it asked for is now where eval looks

    with pytest.raises(AdvPurifyError, match="train it with") as err:
        load_classifier("fmnist", "fmnist_a+vqunet", None, tmp_path / "checkpoints", (1, 32, 32))
    command = re.search(r"`python -m src.train (.*?)`", one_line(err)).group(1)
    assert command == "data=fmnist data.image_size=32 task=retrain defense=vqunet classifier=fmnist_a"
    cfg = compose_cfg("train", shlex.split(command), tmp_path)  # a command that composes
    assert (cfg.task, cfg.defense.name, cfg.classifier.name) == ("retrain", "vqunet", "fmnist_a")


def test_a_defense_vae_checkpoint_cannot_name_a_foreign_attack():
    from src.defenses.defense_vae import DefenseVAE

    shape = {"data": "fmnist", "input_shape": (1, 28, 28), "num_classes": 10}
    with pytest.raises(AdvPurifyError, match="not one of this project's attacks") as err:
        DefenseVAE(**shape, name="d", attacker="a.ckpt", attacks={"x": {"_target_": "os.system"}})
    one_line(err)


# trust, second pass


def test_a_shorter_training_never_replaces_a_longer_one(trained, tmp_path):
    """debug=smoke (1 epoch on 640 images) over a model trained 2 epochs on 6,000."""
    from src.train import train
    from tests.conftest import compose_cfg, install_target

    target = install_target(trained, tmp_path)
    before = target.read_bytes()
    with pytest.raises(
        AdvPurifyError, match=r"trained otherwise \(data.module.train_limit: 6000 -> 640"
    ) as err:
        train(compose_cfg("train", ["debug=smoke"], tmp_path))
    assert "classifier.name=<name>" in one_line(err)
    assert target.read_bytes() == before
    kept = train(compose_cfg("train", ["debug=smoke", "classifier.name=fmnist_a_smoke"], tmp_path))
    assert pathlib.Path(kept["checkpoint"]).name == "fmnist_a_smoke.ckpt" and target.read_bytes() == before


def test_a_changed_setting_is_named_by_its_whole_path(trained, tmp_path):
    from src.train import train
    from tests.conftest import compose_cfg, install_target

    install_target(trained, tmp_path)
    overrides = ["data.module.train_limit=6000", "trainer.max_epochs=2", "classifier.optimizer.lr=10"]
    with pytest.raises(AdvPurifyError, match=r"\(optimizer.lr: 0.001 -> 10\)"):
        train(compose_cfg("train", ["debug=smoke", *overrides], tmp_path))


def test_a_model_with_nan_weights_is_refused(trained, tmp_path):
    good = torch.load(trained["ckpt"], weights_only=True)
    key = next(k for k, v in good["state_dict"].items() if v.is_floating_point())
    good["state_dict"][key] = torch.full_like(good["state_dict"][key], float("nan"))
    path = tmp_path / "nan.ckpt"
    torch.save(good, path)
    with pytest.raises(AdvPurifyError, match=r"NaN or inf weights .*retrain it") as err:
        load_classifier("fmnist", "fmnist_a", path)
    assert str(path) in one_line(err)


def test_a_setting_that_changes_the_numbers_is_in_the_row_key(trained, tmp_path):
    """L2 PGD after L-inf PGD: both curves stay, each under its own name."""
    from src.eval import evaluate
    from src.reporting.rows import read_rows
    from tests.conftest import compose_cfg, install_target

    install_target(trained, tmp_path)
    common = ["debug=smoke", "attack=pgd", "attack.max_iter=2", "eval.n=32"]
    evaluate(compose_cfg("eval", [*common, "eval.eps=[0.1]"], tmp_path))
    evaluate(compose_cfg("eval", [*common, "attack.norm=2", "eval.eps=[1.0]"], tmp_path))
    again = evaluate(compose_cfg("eval", [*common, "eval.eps=[0.1]"], tmp_path))
    rows = read_rows(tmp_path / "results" / "results.csv")
    attacks = [r["attack"] for r in rows if float(r["eps"]) > 0]
    assert attacks == ["pgd[max_iter=2]", "pgd[max_iter=2,norm=2]"]
    assert [r["attack"] for r in again if r["eps"] > 0] == ["pgd[max_iter=2]"]


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.rand(4, 1, 20, 20), torch.zeros(4, dtype=torch.long), r"shape \(1, 20, 20\)"),
        (torch.rand(4, 1, 28, 28), torch.full((4,), 10), r"labels in \[10, 10\].*0..9"),
        (torch.rand(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), r"no images"),
        (torch.rand(4, 1, 28, 28, dtype=torch.float64), torch.zeros(4, dtype=torch.long), r"pass x.to"),
        (torch.rand(4, 1, 28, 28), torch.zeros(3, dtype=torch.long), r"one label per image"),
    ],
)
def test_the_api_refuses_bad_batches_in_one_line(trained, x, y, message):
    from src.api import attackable, defended, load_defense, robust_accuracy

    classifier = load_classifier("fmnist", "fmnist_a", trained["ckpt"])
    none = load_defense("fmnist", "none")
    with pytest.raises(AdvPurifyError, match=message) as err:
        robust_accuracy(defended(classifier, none), x, y, attack="fgsm", threat="classifier")
    one_line(err)
    if "label" not in message:
        with pytest.raises(AdvPurifyError, match=message):
            attackable(classifier, none)(x)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [*lines, lines[-1] + ",extra"], r"line 4: \d+ fields under a header of \d+"),
        (lambda lines: [*lines, lines[0]], r"line 4: the header is repeated"),
        (
            lambda lines: [*lines, lines[1].replace(",0.1,", ",abc,", 1)],
            r"line 4: eps='abc' is not a number",
        ),
        (lambda lines: [*lines[:-1], lines[-1][: len(lines[-1]) // 2]], r"line 3: the line is cut short"),
    ],
)
def test_a_damaged_results_table_is_refused_with_its_line(tmp_path, edit, message):
    from src.reporting.rows import COLUMNS, append_rows, read_rows

    row = dict.fromkeys(COLUMNS, "1") | {"eps": 0.1, "adv_acc": 0.5, "data": "fmnist", "attack": "pgd"}
    path = tmp_path / "results.csv"
    append_rows(path, [row, row | {"eps": 0.2}])
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(AdvPurifyError, match=message) as err:
        read_rows(path)
    assert "remove or fix that line" in one_line(err)


def test_an_accuracy_outside_zero_one_is_refused(tmp_path):
    from src.reporting.rows import COLUMNS, append_rows, read_rows

    path = tmp_path / "results.csv"
    append_rows(path, [dict.fromkeys(COLUMNS, "1") | {"eps": 0.1, "adv_acc": 1.5}])
    with pytest.raises(AdvPurifyError, match=r"adv_acc=1.5 is not an accuracy in \[0, 1\]"):
        read_rows(path)


def test_appending_keeps_the_tables_mode_and_a_full_disk_keeps_the_table(tmp_path, monkeypatch):
    import errno
    import os

    from src.reporting import rows

    path = tmp_path / "results.csv"
    row = dict.fromkeys(rows.COLUMNS, "1")
    rows.append_rows(path, [row])
    path.chmod(0o644)
    rows.append_rows(path, [row])
    assert path.stat().st_mode & 0o777 == 0o644
    before = path.read_text()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        AdvPurifyError, match=r"could not write .*No space left on device.*run the same command"
    ):
        rows.append_rows(path, [row])
    with pytest.raises(AdvPurifyError, match=r"paths.results_dir=.* is not writable \(No space left"):
        rows.require_writable(tmp_path, "paths.results_dir")
    assert path.read_text() == before and not list(tmp_path.glob(".results.csv.*"))


def test_a_folder_where_a_file_belongs_is_refused(trained, tmp_path):
    from src.eval import evaluate
    from tests.conftest import compose_cfg

    with pytest.raises(AdvPurifyError, match=r"is a folder: pass the checkpoint file itself with ckpt="):
        load_classifier("fmnist", "fmnist_a", tmp_path)
    folder = tmp_path / "results_here"
    folder.mkdir()
    cfg = compose_cfg(
        "eval", ["debug=smoke", f"ckpt={trained['ckpt']}", f"paths.results_file={folder}"], tmp_path
    )
    with pytest.raises(AdvPurifyError, match=r"paths.results_file=.* is a folder: set paths.results_file="):
        evaluate(cfg)


@pytest.mark.parametrize("seed", ["abc", "-1", "1.5"])
def test_a_seed_that_is_not_a_whole_number_is_refused(tmp_path, seed):
    from src.evaluation.settings import validate
    from tests.conftest import compose_cfg

    with pytest.raises(AdvPurifyError, match=r"seed=.*it must be a whole number >= 0"):
        validate(compose_cfg("train", [f"seed={seed}"], tmp_path))


def test_settings_the_run_would_ignore_are_refused(trained, tmp_path):
    from src.eval import evaluate
    from src.train import train
    from tests.conftest import compose_cfg

    with pytest.raises(AdvPurifyError, match=r"does not start from ckpt=.*resume=true"):
        train(compose_cfg("train", ["debug=smoke", f"ckpt={trained['ckpt']}"], tmp_path))
    ignored = ["debug=smoke", f"ckpt={trained['ckpt']}", f"defense_ckpt={trained['ckpt']}"]
    with pytest.raises(
        AdvPurifyError, match=r"defense=none has no checkpoint of its own.*drop defense_ckpt="
    ):
        evaluate(compose_cfg("eval", ignored, tmp_path))
    wide = ["debug=smoke", f"ckpt={trained['ckpt']}", "attack=cw_l2", "eval.eps=[1000]"]
    with pytest.raises(AdvPurifyError, match=r"further apart than L2 28; choose budgets up to that"):
        evaluate(compose_cfg("eval", wide, tmp_path))


def test_a_setting_the_target_does_not_take_is_one_line(tmp_path):
    from src.train import train
    from tests.conftest import compose_cfg

    with pytest.raises(
        AdvPurifyError, match=r"^trainer.ckpt_path is not a setting of pytorch_lightning.Trainer"
    ):
        train(compose_cfg("train", ["debug=smoke", "+trainer.ckpt_path=x"], tmp_path))


def test_the_same_training_twice_at_once_is_refused(tmp_path):
    from src.runtime.locks import alone
    from src.train import run_dir, train
    from tests.conftest import compose_cfg

    cfg = compose_cfg("train", ["debug=smoke", "classifier.name=fmnist_a_twice"], tmp_path)
    first = alone(run_dir(cfg, "fmnist", "fmnist_a_twice"), "the first")
    with first, pytest.raises(AdvPurifyError, match=r"already running in another process.*wait for it"):
        train(cfg)


def test_an_unknown_dataset_is_named_with_the_known_ones():
    with pytest.raises(AdvPurifyError, match=r"unknown data 'mnist': choose one of \['cifar10', 'fmnist'\]"):
        load_classifier("mnist", "fmnist_a")


@pytest.mark.parametrize("stop", ["sigint", "sigterm"])
def test_a_stopped_command_says_so_in_one_line_and_exits_130(capsys, stop):
    import os
    import signal

    from src.runtime.console import user_errors

    with pytest.raises(SystemExit) as ended, user_errors():
        if stop == "sigint":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
    assert ended.value.code == 130
    assert "stopped: what was finished is kept" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_conf_file_that_is_not_yaml_is_named(tmp_path):
    from src.runtime.configs import require_readable_conf

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.yaml").write_text("name: x\noops: [\n")
    with pytest.raises(AdvPurifyError, match=r"broken.yaml line 3 is not valid YAML .*fix that file"):
        require_readable_conf(tmp_path)


def test_an_unwritable_checkpoint_folder_stops_a_training_before_any_work(tmp_path):
    from src.train import train
    from tests.conftest import compose_cfg

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = compose_cfg("train", ["debug=smoke", f"paths.checkpoint_dir={blocker}/checkpoints"], tmp_path)
    with pytest.raises(AdvPurifyError, match=r"paths.checkpoint_dir=.* is not writable") as err:
        train(cfg)
    one_line(err)
