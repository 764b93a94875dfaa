"""Threat models: BPDA follows what the defense declares, EOT averages draws, and the adaptive
attack on a real purifier is at least as strong as the classifier-only one."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from src.eval import evaluate
from src.evaluation.threats import Pipeline, PipelineThreat
from src.runtime.errors import AdvPurifyError
from tests.conftest import compose_cfg, install_target


class Toy(nn.Module):
    """A purifier with a chosen gradient contract."""

    def __init__(self, fn, gradient: str = "exact", stochastic: bool = False) -> None:
        super().__init__()
        self.fn, self.gradient, self.stochastic, self.calls = fn, gradient, stochastic, 0

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fn(x)


CLASSIFIER = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def input_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model(x)[:, 0].sum().backward()
    return x.grad


def test_identity_bpda_classifies_the_purified_input_and_passes_the_gradient_straight_through():
    torch.manual_seed(0)
    quantize = Toy(lambda x: (x * 4).round() / 4, gradient="identity")  # zero gradient almost everywhere
    x = torch.rand(5, 1, 4, 4)
    model = Pipeline(CLASSIFIER, quantize, eot_samples=1)
    assert torch.allclose(model(x), CLASSIFIER(quantize.fn(x)))
    expected = input_gradient(CLASSIFIER, quantize.fn(x))  # the classifier's gradient at purify(x)
    assert torch.allclose(input_gradient(model, x), expected) and expected.abs().sum() > 0


def test_exact_gradients_go_through_the_purifier():
    halve = Toy(lambda x: 0.5 * x)
    x = torch.rand(5, 1, 4, 4)
    got = input_gradient(Pipeline(CLASSIFIER, halve, eot_samples=4), x)
    assert torch.allclose(got, 0.5 * input_gradient(CLASSIFIER, x))
    assert halve.calls == 1  # a deterministic defense is run once, whatever eot_samples says


def test_eot_averages_the_log_probabilities_of_its_draws():
    noisy = Toy(lambda x: x + 0.3 * torch.randn_like(x), stochastic=True)
    x = torch.rand(5, 1, 4, 4)
    torch.manual_seed(1)
    out = Pipeline(CLASSIFIER, noisy, eot_samples=6)(x)
    assert noisy.calls == 6
    torch.manual_seed(1)
    draws = torch.stack([CLASSIFIER(noisy.fn(x)).log_softmax(1) for _ in range(6)])
    assert torch.allclose(out, draws.mean(0))


def test_eot_needs_a_draw():
    with pytest.raises(AdvPurifyError, match="eot_samples"):
        PipelineThreat(eot_samples=0).model_to_attack(CLASSIFIER, Toy(lambda x: x))


def test_the_pipeline_attack_on_vqunet_is_at_least_as_strong_as_the_classifier_attack(trained32, tmp_path):
    common = [
        "debug=smoke",
        "defense=vqunet",
        "defense.width=16",
        "data.image_size=32",
        "attack=pgd",
        "attack.max_iter=10",
        f"ckpt={trained32['ckpt']}",
        f"defense_ckpt={trained32['defense_ckpt']}",
        "eval.eps=[0.05,0.1]",
    ]
    rows = {
        threat: evaluate(compose_cfg("eval", [*common, f"threat={threat}"], tmp_path))
        for threat in ("classifier", "pipeline")
    }
    for seen, adaptive in zip(rows["classifier"], rows["pipeline"], strict=True):
        assert adaptive["threat"] == "pipeline" and adaptive["eps"] == seen["eps"]
        assert adaptive["adv_acc"] <= seen["adv_acc"]
    assert rows["pipeline"][-1]["adv_acc"] < rows["pipeline"][-1]["purified_clean_acc"]


def test_transfer_splits_the_images_between_the_target_and_round_robin_surrogates():
    from src.evaluation.threats import TransferThreat

    surrogates = {name: nn.Linear(1, 1) for name in ("s1", "s2")}
    threat = TransferThreat(surrogates=["s1", "s2"], mix=0.5)
    parts = threat.parts(CLASSIFIER, Toy(lambda x: x), 10, surrogates.__getitem__)
    assert [(model, index.tolist()) for model, index in parts] == [
        (CLASSIFIER, [0, 1, 2, 3, 4]),
        (surrogates["s1"], [5, 7, 9]),
        (surrogates["s2"], [6, 8]),
    ]
    pure = TransferThreat(surrogates=["s1"], mix=1.0).parts(CLASSIFIER, None, 4, surrogates.__getitem__)
    assert len(pure) == 1 and pure[0][0] is surrogates["s1"]


def test_transfer_settings_are_checked():
    from src.evaluation.threats import TransferThreat

    with pytest.raises(AdvPurifyError, match="at least one surrogate"):
        TransferThreat(surrogates=[])
    with pytest.raises(AdvPurifyError, match=r"threat\.mix=1\.5"):
        TransferThreat(mix=1.5)


def test_white_box_is_at_least_as_strong_as_transfer_on_real_data(trained, tmp_path):
    from src.train import train

    surrogate = ["debug=smoke", "classifier=fmnist_b", f"paths.output_dir={tmp_path}/surrogate"]
    train(compose_cfg("train", [*surrogate, "data.module.train_limit=3000"], tmp_path))
    install_target(trained, tmp_path)
    common = ["debug=smoke", "attack=fgsm", "eval.eps=[0.3]"]
    (white,) = evaluate(compose_cfg("eval", common, tmp_path))
    transfer = ["threat=transfer", "threat.surrogates=[fmnist_b]"]
    (moved,) = evaluate(compose_cfg("eval", [*common, *transfer], tmp_path))
    assert moved["threat"] == "transfer[surrogates=fmnist_b]"  # the row names its surrogates
    assert white["adv_acc"] <= moved["adv_acc"] < moved["purified_clean_acc"]  # transfers, but weaker
    paper = ["threat=paper", "threat.surrogates=[fmnist_b]"]  # half white-box, half transferred
    (half,) = evaluate(compose_cfg("eval", [*common, *paper], tmp_path))
    assert half["threat"] == "paper[surrogates=fmnist_b]"
    assert half["adv_acc"] == pytest.approx((white["adv_acc"] + moved["adv_acc"]) / 2, abs=0.05)
    with pytest.raises(AdvPurifyError, match="classifier=densenet50_12"):  # an untrained surrogate
        evaluate(compose_cfg("eval", [*common, "threat=transfer"], tmp_path))


@pytest.mark.parametrize(
    ("overrides", "attacked"),
    [
        (["threat=paper"], "fmnist_a+vqunet"),  # the text's "target model": the retrained one
        (["threat=paper", "threat.white_box=original"], "fmnist_a"),
        (["threat=paper", "retrained=true", "threat.white_box=original"], "fmnist_a"),
        (["threat=classifier", "retrained=true"], "fmnist_a+vqunet"),  # the scored model
        (["threat=paper", "defense=none"], "fmnist_a"),  # no weights, no retrained target
        (["threat=transfer"], "fmnist_a"),  # all crafted on surrogates: no white-box share to load
        (["threat=transfer", "threat.mix=0.5"], "fmnist_a+vqunet"),
    ],
)
def test_the_white_box_share_attacks_the_chosen_target(tmp_path, overrides, attacked):
    from src.api import target_name
    from src.evaluation.fingerprints import white_box_name

    cfg = compose_cfg("eval", ["defense=vqunet", *overrides], tmp_path)
    assert white_box_name(cfg, target_name("fmnist_a", cfg.defense, cfg.retrained)) == attacked


def test_paper_threat_without_its_retrained_target_says_how_to_train_it(trained32, tmp_path):
    vq = tmp_path / "checkpoints" / "fmnist" / "32px"
    vq.mkdir(parents=True)
    shutil.copyfile(trained32["ckpt"], vq / "fmnist_a.ckpt")
    shutil.copyfile(trained32["defense_ckpt"], vq / "vqunet.ckpt")
    common = ["debug=smoke", "data.image_size=32", "defense=vqunet", "threat=paper", "eval.eps=[0.1]"]
    with pytest.raises(AdvPurifyError, match=r"task=retrain"):
        evaluate(compose_cfg("eval", common, tmp_path))


@pytest.fixture
def attacked(monkeypatch) -> list[nn.Module]:
    """The models attacks are run on, in order: what was crafted rather than reused."""
    from src.attacks.base import Attack

    models = []
    real_call = Attack.__call__

    def counted_call(self, model, *args, **kwargs):
        models.append(model)
        return real_call(self, model, *args, **kwargs)

    monkeypatch.setattr(Attack, "__call__", counted_call)
    return models


def linear_models(tmp_path, n: int, count: int):
    """A 3-step PGD config, n real test images and `count` linear models (for their shapes)."""
    from src.runtime.errors import build

    cfg = compose_cfg("eval", ["debug=smoke", "attack=pgd", "attack.max_iter=3"], tmp_path)
    x, y = build(cfg.data.module).test_tensors(n)
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 10)).eval() for _ in range(count)]
    return cfg, x, y, models


def test_an_oblivious_threat_crafts_once_for_every_defense_and_alone_gives_the_same(
    trained, tmp_path, attacked
):
    """Under `classifier` the images do not depend on the defense: consecutive runs share them,
    and a run alone (after a kill, in another order) crafts exactly the same ones."""
    from src.evaluation import crafted

    install_target(trained, tmp_path)
    common = ["debug=smoke", "attack=pgd", "eval.eps=[0.3]", "eval.n=64"]
    identity = ["defense._target_=tests.test_sanity.GradientMasking", "defense.name=masking"]
    crafted.CRAFTED.clear()
    (plain,) = evaluate(compose_cfg("eval", common, tmp_path))
    (masked,) = evaluate(compose_cfg("eval", [*common, *identity], tmp_path))
    assert len(attacked) == 1 and masked["seconds"] == plain["seconds"] > 0  # reported by both rows
    assert masked["adv_acc"] == plain["adv_acc"] < 0.2  # an identity defense: the same images
    crafted.CRAFTED.clear()
    (alone,) = evaluate(compose_cfg("eval", [*common, *identity, "eval.recompute=true"], tmp_path))
    assert len(attacked) == 2 and alone["adv_acc"] == masked["adv_acc"]  # crafted anew, same images
    (adaptive,) = evaluate(compose_cfg("eval", [*common, *identity, "threat=pipeline"], tmp_path))
    assert adaptive["adv_acc"] > 0.5  # crafted through the masked gradient, not reused
    kept = [*common, "eval.recompute=true", f"paths.crafted_dir={tmp_path / 'crafted'}"]
    evaluate(compose_cfg("eval", kept, tmp_path))
    crafted.CRAFTED.clear()  # as if the next process: only the folder remains
    (later,) = evaluate(compose_cfg("eval", [*kept, *identity], tmp_path))
    assert len(attacked) == 4 and later["adv_acc"] == alone["adv_acc"]  # 3: the pipeline's


def test_a_crafted_part_is_reused_exactly_where_it_is_the_same_crafting(tmp_path, attacked):
    """`paper` crafts half the images on the three DenseNets for every defense, whose white-box
    targets differ: the surrogates' shares are crafted once, a part after a reused one draws the
    random start it would have drawn, and a changed model is crafted anew."""
    from src.evaluation.crafted import Store
    from src.evaluation.crafting import Crafter

    cfg, x, y, (a, b, s, t) = linear_models(tmp_path, 48, 4)
    thirds = torch.arange(48).chunk(3)

    def run(white: nn.Module, store: Store) -> torch.Tensor:
        crafter = Crafter(cfg.attack, [0.1], oblivious=True)
        crafter.store = store
        return crafter([(s, thirds[0]), (white, thirds[1]), (t, thirds[2])], x, y, 0.1, seed=7)[0]

    shared = Store()
    first = run(a, shared)
    second = run(b, shared)  # another white-box target: only its share is crafted
    assert attacked == [s, a, t, b]
    alone = run(b, Store())
    assert torch.equal(second, alone)  # b drew the random start it draws after s crafted anew
    assert torch.equal(first[thirds[0]], second[thirds[0]])
    assert not torch.equal(first[thirds[1]], second[thirds[1]])
    with torch.no_grad():
        s[1].weight.add_(0.01)
    run(a, shared)  # s changed: crafted anew; a and t (same random state after s) reused
    assert attacked[-1] is s and len(attacked) == 8


def test_crafted_parts_kept_in_a_folder_serve_a_later_process_and_a_bad_file_is_refused(tmp_path, attacked):
    """`paths.crafted_dir`: a part written by one process is read by the next (another store
    on the same folder) as the very images and random state; an unreadable file stops with the
    fix, and the fix works."""
    from src.evaluation.crafted import FolderStore
    from src.evaluation.crafting import Crafter

    cfg, x, y, (s, t) = linear_models(tmp_path, 32, 2)
    halves = torch.arange(32).chunk(2)
    folder = tmp_path / "crafted"

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        crafter = Crafter(cfg.attack, [0.1], oblivious=True, store=FolderStore(folder))
        x_adv = crafter([(s, halves[0]), (t, halves[1])], x, y, 0.1, seed=7)[0]
        return x_adv, torch.rand(3)  # the random state the crafting left

    first, after_first = run()
    assert len(attacked) == 2 and len(list(folder.glob("*.pt"))) == 2
    again, after_again = run()  # a later process: nothing crafted, the same images and state
    assert len(attacked) == 2 and torch.equal(again, first) and torch.equal(after_again, after_first)
    assert not torch.equal(first, x)
    broken = sorted(folder.glob("*.pt"))[0]
    broken.write_bytes(b"not a part")
    with pytest.raises(AdvPurifyError, match=rf"{broken.name} is not a crafted part .*delete it"):
        run()
    broken.unlink()
    assert torch.equal(run()[0], first) and len(attacked) == 3  # the deleted part crafted again


def test_a_crafting_in_parts_stopped_at_its_deadline_goes_on_to_the_images_of_one_run(
    tmp_path, attacked, monkeypatch
):
    """`eval.part_size`: a crafting longer than a run's budget is cut into parts kept on disk; a
    run stopped between two parts keeps the finished ones, and the next run crafts only the
    rest and ends with exactly the images an uninterrupted run crafts."""
    from src.evaluation import crafted
    from src.evaluation.crafted import FolderStore
    from src.evaluation.crafting import Crafter
    from src.runtime.deadline import OutOfTime

    cfg, x, y, (model,) = linear_models(tmp_path, 40, 1)
    everything = [(model, torch.arange(40))]

    def run(folder, deadline=None) -> torch.Tensor:
        store = FolderStore(folder) if folder else None
        crafter = Crafter(cfg.attack, [0.1], False, store, part_size=16, deadline=deadline)
        return crafter(everything, x, y, 0.1, seed=7)[0]

    uninterrupted = run(tmp_path / "one_run")
    assert len(attacked) == 3  # 16 + 16 + 8 images
    folder = tmp_path / "stopped"
    deadline_passed = iter([False, True])  # the deadline passes while the first part is crafted
    with monkeypatch.context() as patched:
        patched.setattr(crafted, "past", lambda deadline: next(deadline_passed))
        with pytest.raises(OutOfTime, match="finished parts are kept"):
            run(folder, deadline=0.0)
    assert len(attacked) == 4 and len(list(folder.glob("*.pt"))) == 1
    assert torch.equal(run(folder), uninterrupted) and len(attacked) == 6  # only the other two
    assert torch.equal(run(None, deadline=0.0), uninterrupted)  # in memory: no stop, none kept


def test_transferred_images_are_crafted_once_whatever_target_scores_them(tmp_path, attacked):
    """Under `transfer` every image is crafted on the surrogates, so a target retrained on a
    purifier's outputs is scored on the very images the original target was: one crafting."""
    from src.defenses.base import DefendedClassifier
    from src.defenses.none import NoDefense
    from src.evaluation.crafted import Store
    from src.evaluation.crafting import Crafter
    from src.evaluation.scoring import Loaded, measure

    cfg, x, y, (original, retrained, surrogate) = linear_models(tmp_path, 32, 3)
    crafter = Crafter(cfg.attack, [0.1], oblivious=True, store=Store())
    images = []
    for name, target in (("fmnist_a", original), ("fmnist_a+vqunet", retrained)):
        defense = NoDefense()
        loaded = Loaded(
            target, defense, DefendedClassifier(target, defense), x, y, [(surrogate, torch.arange(32))]
        )
        base = {
            "data": "fmnist",
            "defense": "vqunet",
            "classifier": name,
            "attack": "pgd",
            "threat": "transfer",
        }
        scores = {"clean_acc": 1.0, "purified_clean_acc": 1.0, "clean_recon_l1_255": 0.0}
        base |= {"n": 32, "seed": 0, "commit": "", "fingerprint": "", "models": ""} | scores
        images.append(measure(loaded, crafter, 0.1, base, 32, 3)[1])
    assert attacked == [surrogate]
    assert torch.equal(images[0], images[1])
