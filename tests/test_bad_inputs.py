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
