"""Export: a self-contained TorchScript purifier that matches PyTorch, a model card holding only
the rows its checkpoint earned, a zoo the API reads, and refusals that say why."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from src.api import card, load_classifier, load_defense
from src.eval import evaluate
from src.export import export
from src.reporting.rows import append_rows, read_rows
from src.runtime.errors import AdvPurifyError, build
from src.zoo import list_zoo
from tests.conftest import compose_cfg

LOAD_WITHOUT_THIS_REPO = """
import sys, torch
sys.modules["src"] = None  # any import of this repository's code now fails
x = torch.load(sys.argv[1])
torch.save({name: torch.jit.load(name)(x) for name in ("purifier.pt", "defended.pt")}, sys.argv[2])
"""


@pytest.fixture(scope="module")
def exported(trained32, tmp_path_factory) -> dict:
    """The shared VQUNet evaluated (PGD-3 through it, eps 0 and 0.1), then exported."""
    tmp = tmp_path_factory.mktemp("export")
    models = [
        "debug=smoke",
        "data.image_size=32",
        "defense=vqunet",
        "defense.width=16",
        f"paths.checkpoint_dir={trained32['tmp']}/checkpoints",
        f"ckpt={trained32['ckpt']}",
        f"defense_ckpt={trained32['defense_ckpt']}",
    ]
    attack = ["threat=pipeline", "attack=pgd", "attack.max_iter=3", "eval.n=64", "eval.eps=[0,0.1]"]
    rows = evaluate(compose_cfg("eval", [*models, *attack], tmp))
    cfg = compose_cfg("export", models, tmp)
    return {"tmp": tmp, "cfg": cfg, "models": models, "rows": rows, "folder": export(cfg)}


def test_the_exported_files_load_without_this_repository_and_match_pytorch(exported, tmp_path):
    """Each stage is compared on its own input: another process may round the purifier's output
    differently within 1e-5, which the classifier's logits magnify by their input gradient."""
    folder, cfg = exported["folder"], exported["cfg"]
    x, _ = build(cfg.data.module).test_tensors(16)
    torch.save(x, tmp_path / "x.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THIS_REPO, str(tmp_path / "x.pt"), str(tmp_path / "out.pt")],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        check=True,
    )
    got = torch.load(tmp_path / "out.pt")
    purifier = load_defense("fmnist", "vqunet", ckpt=cfg.defense_ckpt)
    classifier = load_classifier("fmnist", "fmnist_a", ckpt=cfg.ckpt)
    with torch.no_grad():
        assert (got["purifier.pt"] - purifier.purify(x)).abs().max() <= 1e-5
        assert (got["defended.pt"] - classifier(got["purifier.pt"])).abs().max() <= 1e-5


def test_the_card_holds_the_rows_of_this_checkpoint_and_no_other(exported):
    found = card("fmnist", "vqunet", zoo=exported["cfg"].paths.zoo_dir)
    assert found["defense"] == "vqunet" and found["input_shape"] == [1, 32, 32]
    assert found["training"]["width"] == 16 and found["gradient"] == "straight_through"
    assert set(found["files"]) == {"purifier.pt", "defended.pt", "vqunet.ckpt"}
    adv = exported["rows"][1]
    assert found["robust_accuracy"] == [
        {k: adv[k] for k in ("classifier", "attack", "threat", "eps", "n", "adv_acc", "seed", "commit")}
    ]
    (clean,) = found["clean_accuracy"]
    assert clean == {
        "classifier": "fmnist_a",
        "n": 64,
        "classifier_alone": adv["clean_acc"],
        "purified": adv["purified_clean_acc"],
    }
    assert (
        "| fmnist_a | pgd[max_iter=3] | pipeline | 0.1 | 64 |" in (exported["folder"] / "card.md").read_text()
    )


def test_rows_of_another_model_of_the_same_name_stay_off_the_card(exported):
    cfg = exported["cfg"]
    other = {**read_rows(cfg.paths.results_file)[-1], "eps": "0.3", "models": "0123456789abcdef"}
    append_rows(cfg.paths.results_file, [other])
    export(cfg)  # the same checkpoint again: its files and card are rewritten
    found = json.loads((exported["folder"] / "card.json").read_text())
    assert [r["eps"] for r in found["robust_accuracy"]] == [0.1]


def test_the_zoo_loads_the_exported_checkpoint_and_lists_it(exported):
    zoo, cfg = exported["cfg"].paths.zoo_dir, exported["cfg"]
    x, _ = build(cfg.data.module).test_tensors(4)
    from_zoo = load_defense("fmnist", "vqunet", zoo=zoo)
    assert torch.equal(from_zoo.purify(x), load_defense("fmnist", "vqunet", ckpt=cfg.defense_ckpt).purify(x))
    table = list_zoo(zoo)
    assert table.row_count == 1 and table.columns[1]._cells == ["vqunet"]
    assert "(pgd[max_iter=3], n=64)" in table.columns[4]._cells[0]
    with pytest.raises(AdvPurifyError, match=r"no cyclegan for data=fmnist in .*export it with"):
        load_defense("fmnist", "cyclegan", zoo=zoo)


def test_the_command_line_exports_and_lists_the_zoo(exported, tmp_path):
    # an entry point runs inside Hydra: the card must compose the rows' configs there too
    zoo = tmp_path / "zoo"
    overrides = [*exported["models"], "logger=none", f"paths.zoo_dir={zoo}", f"hydra.run.dir={tmp_path}/run"]
    overrides.append(f"paths.results_file={exported['cfg'].paths.results_file}")
    subprocess.run([sys.executable, "-m", "src.export", *overrides], check=True, capture_output=True)
    assert json.loads((zoo / "fmnist" / "vqunet" / "card.json").read_text())["robust_accuracy"]
    command = [sys.executable, "-m", "src.zoo", "list", "--zoo", str(zoo)]
    listed = subprocess.run(command, check=True, capture_output=True, text=True)
    assert "vqunet" in listed.stdout and "32px" in listed.stdout


def test_a_card_of_another_format_is_refused_with_the_command_that_renews_it(tmp_path):
    folder = tmp_path / "fmnist" / "vqunet"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"defense": "vqunet", "clean_accuracy": {}}))
    renew = r"export it again with python -m src.export defense=vqunet data=fmnist"
    with pytest.raises(AdvPurifyError, match=renew):
        list_zoo(tmp_path)


def test_another_checkpoint_never_replaces_an_exported_one(exported, tmp_path):
    ckpt = torch.load(exported["cfg"].defense_ckpt, weights_only=True)
    key = next(iter(ckpt["state_dict"]))
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + 1
    other = tmp_path / "vqunet.ckpt"
    torch.save(ckpt, other)
    cfg = compose_cfg("export", [*exported["models"], f"defense_ckpt={other}"], exported["tmp"])
    with pytest.raises(AdvPurifyError, match=r"is another vqunet checkpoint: move that folder away"):
        export(cfg)


@pytest.mark.parametrize(
    ("defense", "why"),
    [("none", "the identity"), ("defense_gan", "search over z"), ("sfl_vae_vote", "export each part")],
)
def test_what_cannot_export_says_why_in_one_line(defense, why, tmp_path):
    with pytest.raises(AdvPurifyError, match=f"defense={defense} cannot be exported: .*{why}"):
        export(compose_cfg("export", ["debug=smoke", f"defense={defense}"], tmp_path))


def test_export_settings_are_checked(tmp_path):
    with pytest.raises(AdvPurifyError, match=r"export.atol=0: it must be a finite number > 0"):
        export(compose_cfg("export", ["debug=smoke", "defense=vqunet", "export.atol=0"], tmp_path))


def test_a_zoo_file_changed_after_export_is_refused(exported, tmp_path):
    """A conv weight multiplied by -3 in the zoo's checkpoint: the card's sha256 no longer fits."""
    import shutil

    zoo = tmp_path / "zoo"
    shutil.copytree(exported["cfg"].paths.zoo_dir, zoo)
    path = zoo / "fmnist" / "vqunet" / "vqunet.ckpt"
    ckpt = torch.load(path, weights_only=True)
    key = next(k for k, v in ckpt["state_dict"].items() if v.dim() == 4)
    ckpt["state_dict"][key] = ckpt["state_dict"][key] * -3
    torch.save(ckpt, path)
    with pytest.raises(
        AdvPurifyError, match=r"vqunet.ckpt is not the file its card records.*export it again"
    ):
        load_defense("fmnist", "vqunet", zoo=zoo)
    found = json.loads((zoo / "fmnist" / "vqunet" / "card.json").read_text())
    assert set(found["sha256"]) == {"purifier.pt", "defended.pt", "vqunet.ckpt"}


def test_an_export_without_the_chain_leaves_no_stale_chain(exported, tmp_path):
    cfg = compose_cfg("export", [*exported["models"], "export.defended=false"], exported["tmp"])
    folder = export(cfg)
    assert not (folder / "defended.pt").exists()
    assert set(card("fmnist", "vqunet", zoo=cfg.paths.zoo_dir)["sha256"]) == {"purifier.pt", "vqunet.ckpt"}
    export(exported["cfg"])  # the module's other tests expect the chain


def test_an_unwritable_export_folder_stops_before_tracing(exported, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = compose_cfg("export", [*exported["models"], f"export.dir={blocker}/zoo"], exported["tmp"])
    with pytest.raises(AdvPurifyError, match=r"export.dir=.* is not writable \(Not a directory\)"):
        export(cfg)
