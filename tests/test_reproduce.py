"""The one reproduction command: its plan, a run of every stage on real data, a second run that
does nothing, a change upstream that redoes exactly what depends on it, and a time budget."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import torch

from src import reproduce as reproduction
from src.api import composed
from src.evaluation import grid as reproduction_eval
from src.evaluation.fingerprints import run_fingerprint
from src.reporting.rows import read_rows
from src.reproduce import STAGES, Reproduction, reproduce, waves
from src.runtime import deadline as run_deadline
from src.runtime.errors import AdvPurifyError
from src.train import training_state
from tests.conftest import ROOT


def paths(tmp: Path) -> list[str]:
    return [f"paths.checkpoint_dir={tmp}/checkpoints", f"paths.results_dir={tmp}/results"]


def steps_of(experiment: str):
    work = Reproduction([f"experiment={experiment}"])
    return work.cfg.reproduce, work.steps


@pytest.mark.parametrize("experiment", ["fmnist_smoke", "cifar10_cpu", "fmnist_full", "cifar10_full"])
def test_every_plan_composes_and_runs_its_stages_in_order(experiment):
    _, steps = steps_of(experiment)
    stages = [s.stage for s in steps]
    assert stages == sorted(stages, key=STAGES.index) and set(stages) == set(STAGES)
    evals = [s for s in steps if s.entry == "eval"]
    assert not [s for s in evals if "threat=pipeline" in s.overrides and "defense=none" in s.overrides]
    for step in steps[:-1]:  # each run composes as its command line would
        keys = [o.partition("=")[0] for o in step.overrides]
        assert len(keys) == len(set(keys)), step.overrides
    assert len([s for s in steps if s.stage == "targets"]) == 3
    assert any("attack=autoattack" in s.overrides for s in evals)


def test_sizes_layer_with_the_last_one_winning():
    spec, steps = steps_of("cifar10_cpu")
    defense_vae = next(s for s in steps if s.stage == "purifiers" and s.label == "defense=defense_vae")
    assert "data.module.train_limit=5000" in defense_vae.overrides  # the model's own over the stage's
    assert "data.module.train_limit=30000" not in defense_vae.overrides
    runs = [s for s in steps if "defense=defense_vae" in s.overrides]
    others = [s for s in runs if s is not defense_vae]  # its retrained target and its evaluations
    assert any(s.stage == "retrained" for s in others) and any(s.entry == "eval" for s in others)
    for step in others:  # its fit's slice shapes its own training alone
        assert "data.module.train_limit=5000" not in step.overrides, step.overrides
        assert "defense.latent_dim=128" in step.overrides  # while its size reaches every run of it
    voters = [s for s in steps if s.stage == "voters" and "task=retrain" in s.overrides]
    assert len(voters) == spec.size.voters  # the first k voters
    vote_evals = [s for s in steps if s.entry == "eval" and "defense=sfl_vae_vote" in s.overrides]
    kept = [s.overrides for s in vote_evals]
    assert all("defense.voters=[resnet20,resnet32,resnet62]" in o and "defense.draws=3" in o for o in kept)
    aa = [s for s in steps if "attack=autoattack" in s.overrides]
    assert aa and all("attack.attacks=[apgd-ce,apgd-t]" in s.overrides for s in aa)  # the size's, per attack
    assert all("eval.eps=[0.03]" in s.overrides for s in aa)  # at the headline budget
    parted = [s.label.split()[0] for s in aa if "eval.part_size=25" in s.overrides]
    assert parted == ["defense=defense_gan"]  # through the one defense whose eps outlasts a run's budget
    surrogates = [s.label for s in steps if s.stage == "surrogates"]
    assert surrogates == [f"classifier={s}" for s in composed("train", ["threat=transfer"]).threat.surrogates]
    chosen = [s for s in steps if "threat=paper" in s.overrides or "threat=transfer" in s.overrides]
    for step in chosen:  # the white-box share: the retrained target where there is one
        retrained = step.label.split()[0].removeprefix("defense=") in spec.retrain_on
        assert ("threat.white_box=original" in step.overrides) != retrained, step.overrides


def test_a_fingerprint_ignores_where_a_run_went(tmp_path):
    """A grid started on a GPU machine (its data folder elsewhere, more workers) is finished on
    another without recomputing, while a setting that changes the numbers still counts."""
    base = ["experiment=fmnist_smoke", *paths(tmp_path)]
    stamp = run_fingerprint(composed("eval", base), "fmnist", "fmnist_a", (1, 32, 32))
    moved = composed("eval", [*base, "paths.data_dir=/elsewhere", "data.module.num_workers=4", "trainer=gpu"])
    assert run_fingerprint(moved, "fmnist", "fmnist_a", (1, 32, 32)) == stamp
    other = composed("eval", [*base, "eval.n=65"])
    assert run_fingerprint(other, "fmnist", "fmnist_a", (1, 32, 32)) != stamp


SMALL = [  # a slice of the smoke plan: each stage with one or two models, on real data
    "reproduce.targets=[fmnist_a]",
    "reproduce.purifiers=[vqunet,sfl_vae]",
    "reproduce.retrain_on=[vqunet]",
    "reproduce.size.voters=1",
    "reproduce.threats=[classifier,pipeline]",  # no surrogates: the slow test trains them
    "reproduce.attacks=[fgsm]",
    "reproduce.eps=[0.1]",
    "reproduce.autoattack_eps=[]",
    "reproduce.size.n=32",
    "reproduce.size.n_clean=64",
    "reproduce.size.n_pipeline=8",
]


@pytest.mark.slow
def test_every_stage_runs_with_the_surrogates_and_autoattack(tmp_path):
    """The surrogates (three DenseNets) and AutoAttack: 7 minutes on a 2-core CPU."""
    more = ["reproduce.threats=[classifier,pipeline,transfer]", "reproduce.autoattack_eps=[0.1]"]
    tallies = reproduce(
        ["experiment=fmnist_smoke", *paths(tmp_path), "logger=none", *SMALL, *more], None, False
    )
    assert all(tallies[stage].ran > 0 and tallies[stage].left == 0 for stage in STAGES)
    results = (tmp_path / "results" / "results.csv").read_text()
    assert ",transfer," in results and ",autoattack," in results


def test_one_command_runs_its_stages_then_finds_everything_done(tmp_path, monkeypatch):
    base = ["experiment=fmnist_smoke", *paths(tmp_path), "logger=none", *SMALL]
    first = reproduce(base, budget_minutes=None, dry_run=False)
    assert all(first[stage].ran > 0 and first[stage].left == 0 for stage in STAGES if stage != "surrogates")
    results = (tmp_path / "results" / "results.csv").read_text()
    assert "vqunet" in results and "sfl_vae_vote" in results and ",pipeline," in results
    assert (tmp_path / "results" / "REPORT.md").exists()
    assert "autoattack" not in results  # reproduce.autoattack_eps=[]: none planned

    start = time.perf_counter()
    second = reproduce(base, budget_minutes=None, dry_run=False)
    assert all(t.ran == 0 and t.left == 0 for t in second.values())
    assert sum(t.done for t in second.values()) == sum(first[stage].ran for stage in STAGES)
    assert time.perf_counter() - start < 30  # remembered, not recomposed
    assert (tmp_path / "results" / "results.csv").read_text() == results

    # the purifier replaced upstream (as by a training elsewhere): exactly what learned from it or
    # measured it is redone, nothing else
    work = Reproduction(base)
    vqunet = next(s for s in work.steps if s.label == "defense=vqunet")
    _, files = training_state(work.composed(vqunet))
    ckpt = torch.load(files[-1], weights_only=True)
    ckpt["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, files[-1])
    on_vqunet = [s for s in work.steps if s.entry == "eval" and "defense=vqunet" in s.overrides]
    summaries = []
    monkeypatch.setattr(reproduction, "show_summary", lambda tallies, _: summaries.append(tallies))
    with monkeypatch.context() as failing:  # stopped by an error in the first run left to do
        failing.setattr(reproduction, "job", lambda *_: (_ for _ in ()).throw(RuntimeError("boom")))
        with pytest.raises(RuntimeError, match="boom"):
            reproduce(base, budget_minutes=None, dry_run=False)
    assert summaries[-1]["retrained"].left == 1 and summaries[-1]["report"].left == 0
    assert summaries[-1]["attacks"].left == len(on_vqunet)  # unreached, yet done
    ticks = iter(range(0, 10**6, 600))  # stopped by its budget at the first run left to do
    stopped = reproduce(base, budget_minutes=5, dry_run=False, clock=lambda: next(ticks))
    assert stopped["retrained"].left == 1 and stopped["purifiers"].left == 0
    assert stopped["attacks"].left == len(on_vqunet) and stopped["report"].left == 0  # unreached, yet done
    assert stopped["attacks"].done == first["attacks"].ran - len(on_vqunet)
    third = reproduce(base, budget_minutes=None, dry_run=False)
    assert third["targets"].ran == third["surrogates"].ran == third["purifiers"].ran == 0
    assert third["retrained"].ran == 1 and third["voters"].ran == 0  # voting's purifier is sfl_vae
    assert third["attacks"].ran == len(on_vqunet) and third["report"].ran == 1

    # two defaults changed since the purifiers were published (as an older trained them): the
    # plan names both before any run, not one refusal per start, and moving them away is the fix
    stale = []
    for label, setting in [("defense=vqunet", "beta"), ("defense=sfl_vae", "kl_weight")]:
        _, files = training_state(work.composed(next(s for s in work.steps if s.label == label)))
        ckpt = torch.load(files[-1], weights_only=True)
        ckpt["hyper_parameters"][setting] = 7.0
        ckpt["advpurify"]["training"] = "an older training"
        torch.save(ckpt, files[-1])
        stale.append(files[-1])
    started = []
    monkeypatch.setattr(reproduction, "job", lambda _base, step, _threads, _deadline: started.append(step))
    refusal = r"^2 published model\(s\) were trained with other settings"
    with pytest.raises(AdvPurifyError, match=refusal) as err:
        reproduce(base, budget_minutes=None, dry_run=False)
    assert f"{stale[0]} (beta: 7.0 -> 1.0)" in str(err.value) and "kl_weight: 7.0 -> " in str(err.value)
    assert started == [] and "\n" not in str(err.value)
    (tmp_path / "superseded").mkdir()
    for path in stale:
        path.rename(tmp_path / "superseded" / path.name)
    after = Reproduction(base)
    assert after.superseded([after.is_done(step) for step in after.steps]) == []


def test_runs_go_in_waves_of_one_stage_and_the_tables_wait_for_their_voters():
    _, steps = steps_of("fmnist_smoke")
    groups = waves(steps)
    assert sorted(i for g in groups for i in g) == list(range(len(steps)))
    assert all(len({steps[i].stage for i in g}) == 1 for g in groups)
    tables = next(i for i, s in enumerate(steps) if "task=tables" in s.overrides)
    assert [g for g in groups if tables in g] == [[tables]]
    assert len(groups) == len(STAGES) + 1  # each stage once, the voters' split before their tables


TWO_TARGETS = [  # two trainings that may run side by side, then their grid
    "reproduce.targets=[fmnist_a,fmnist_b]",
    "reproduce.purifiers=[]",
    "reproduce.retrain_on=[]",
    "reproduce.voting=null",
    "reproduce.threats=[classifier]",
    "reproduce.attacks=[fgsm]",
    "reproduce.eps=[0.1]",
    "reproduce.autoattack_eps=[]",
    "reproduce.size.n=32",
    "reproduce.size.n_clean=64",
]


def test_parallel_jobs_run_side_by_side_to_the_same_numbers(tmp_path):
    numbers = {}
    for jobs in (2, 1):
        base = ["experiment=fmnist_smoke", *paths(tmp_path / str(jobs)), "logger=none", *TWO_TARGETS]
        tallies = reproduce(base, budget_minutes=None, dry_run=False, jobs=jobs)
        assert tallies["targets"].ran == 2 and all(t.left == 0 for t in tallies.values())
        rows = read_rows(tmp_path / str(jobs) / "results" / "results.csv")
        numbers[jobs] = sorted((r["classifier"], r["eps"], r["clean_acc"], r["adv_acc"]) for r in rows)
        log = [
            r
            for r in read_rows(tmp_path / str(jobs) / "results" / "reproduce_log.csv")
            if r["stage"] == "targets"
        ]
        ends = [time.mktime(time.strptime(r["finished"], "%Y-%m-%d %H:%M:%S")) for r in log]
        starts = [end - float(r["seconds"]) for end, r in zip(ends, log, strict=True)]
        side_by_side = max(starts) < min(ends) - 1  # the later start came before the earlier end
        assert side_by_side == (jobs == 2), log
    assert numbers[2] == numbers[1]


def test_a_budget_stops_before_the_next_run_and_says_what_is_left(tmp_path):
    base = ["experiment=fmnist_smoke", *paths(tmp_path), "logger=none", *SMALL]
    ticks = iter(range(0, 10**6, 600))  # every look at the clock is ten minutes later
    tallies = reproduce(base, budget_minutes=5, dry_run=False, clock=lambda: next(ticks))
    assert sum(t.ran for t in tallies.values()) == 0
    assert sum(t.left for t in tallies.values()) == len(Reproduction(base).steps)


def one_target(tmp: Path) -> list[str]:
    """A plan of one target trained for two epochs, its clean row and a grid of two eps."""
    kept = [o for o in TWO_TARGETS if not o.startswith(("reproduce.targets=", "reproduce.eps="))]
    mine = ["reproduce.targets=[fmnist_a]", "reproduce.eps=[0.05,0.1]"]
    return ["experiment=fmnist_smoke", *paths(tmp), "logger=none", *kept, *mine]


def test_a_budget_stops_a_training_after_an_epoch_and_the_next_run_continues_it(tmp_path, monkeypatch):
    base = [*one_target(tmp_path), "+reproduce.size.stages.targets=['trainer.max_epochs=2']"]
    monkeypatch.setattr(run_deadline, "past", lambda when: when is not None)  # passed in epoch 1
    stopped = reproduce(base, budget_minutes=60, dry_run=False)
    assert stopped["targets"].ran == 0 and stopped["targets"].left == 1 and stopped["attacks"].ran == 0
    (last,) = (tmp_path / "checkpoints").rglob("last.ckpt")
    assert torch.load(last, weights_only=True)["epoch"] == 0  # the first epoch's, written
    assert read_rows(tmp_path / "results" / "reproduce_log.csv")[-1]["outcome"] == "stopped: out of time"
    assert not list((tmp_path / "checkpoints").rglob("fmnist_a.ckpt"))  # nothing published

    monkeypatch.undo()
    rest = reproduce(base, budget_minutes=60, dry_run=False)
    assert rest["targets"].ran == 1 and all(t.left == 0 for t in rest.values())
    assert not last.parent.exists()  # continued from last.ckpt, then published
    (published,) = (tmp_path / "checkpoints").rglob("fmnist_a.ckpt")
    assert torch.load(published, weights_only=True)["epoch"] == 1  # both epochs, not one again


def test_a_budget_stops_a_grid_between_its_cells_and_the_next_run_goes_on(tmp_path, monkeypatch):
    """A long cell (Defense-GAN's adaptive PGD on a CPU: an hour per eps) would overrun the
    budget by hours if it were checked between runs only: an eval starts no eps after the
    deadline, keeps the ones written, and the rerun does exactly the rest."""
    base = one_target(tmp_path)
    results = tmp_path / "results" / "results.csv"

    def eps_written() -> list[float]:
        rows = read_rows(results) if results.exists() else []
        return [float(r["eps"]) for r in rows if r["attack"] == "fgsm"]

    # the deadline comes once the clean row and the grid's first eps are written
    monkeypatch.setattr(reproduction_eval, "past", lambda when: when is not None and len(eps_written()) >= 2)
    stopped = reproduce(base, budget_minutes=60, dry_run=False)
    assert stopped["targets"].ran == 1 and stopped["attacks"].ran == 1  # the clean row
    assert stopped["attacks"].left == 1 and stopped["report"].left == 1
    assert eps_written() == [0.0, 0.05]
    log = read_rows(tmp_path / "results" / "reproduce_log.csv")
    assert log[-1]["outcome"] == "stopped: out of time" and "eval.eps=[0.05,0.1]" in log[-1]["run"]

    monkeypatch.undo()
    assert not reproduction_eval.past(None) and reproduction_eval.past(time.time() - 1)
    rest = reproduce(base, budget_minutes=60, dry_run=False)
    assert rest["attacks"].ran == 1 and rest["attacks"].done == 1 and rest["report"].ran == 1
    assert eps_written() == [0.0, 0.05, 0.1]  # 0.05 kept, not redone


def test_a_change_to_conf_during_a_run_stops_it_before_the_next_run(tmp_path, monkeypatch):
    """A config edited mid-run would be composed by the later runs only, beside a plan (and
    already-imported code) made from the old one; the run stops instead, and a rerun replans."""
    base = ["experiment=fmnist_smoke", *paths(tmp_path), "logger=none", *SMALL]
    started = []
    monkeypatch.setattr(reproduction, "job", lambda _base, step, _threads, _deadline: started.append(step))
    digests = iter(["before"] * 2 + ["edited"] * 10**3)  # the plan's, the first run's, then edited
    monkeypatch.setattr(reproduction, "conf_digest", lambda: next(digests))
    with pytest.raises(AdvPurifyError, match=r"conf/ changed while this reproduction ran: run it again"):
        reproduce(base, budget_minutes=None, dry_run=False)
    assert len(started) == 1


def test_the_script_refuses_a_dataset_or_size_it_does_not_have():
    for args in (["mnist"], ["fmnist", "huge"], []):
        run = subprocess.run(
            ["bash", "scripts/reproduce.sh", *args], cwd=ROOT, capture_output=True, text=True
        )
        assert run.returncode == 2 and ("usage" in run.stderr or "size must be" in run.stderr)


def test_an_experiment_without_a_plan_is_refused_with_the_ones_that_have_one():
    from src.runtime.errors import AdvPurifyError

    with pytest.raises(AdvPurifyError, match=r"choose experiment= one of \[.*fmnist_smoke"):
        Reproduction(["experiment=demo"])


def test_a_bad_voter_count_is_refused_in_one_line():
    from src.runtime.errors import AdvPurifyError

    with pytest.raises(AdvPurifyError, match=r"reproduce.size.voters=0: it must be a whole number >= 1"):
        Reproduction(["experiment=fmnist_smoke", "reproduce.size.voters=0"])


@pytest.mark.parametrize(
    ("typo", "fixed", "message"),
    [
        (
            "through.autoattack.defense_gann",
            "through.autoattack.defense_gan",
            "through.autoattack.defense_gann: no defense",
        ),
        ("through.autoatack.defense_gan", "through.autoattack.defense_gan", "through.autoatack: no attack"),
        ("models.vqunett", "models.vqunet", "models.vqunett: no model"),
        ("fits.fmnist_aa", "fits.fmnist_a", "fits.fmnist_aa: no model"),
        ("attacks.pgdd", "attacks.pgd", "attacks.pgdd: no attack"),
        ("stages.target", "stages.targets", "stages.target: no stage"),
    ],
)
def test_a_size_naming_a_model_attack_or_stage_that_does_not_exist_is_refused(typo, fixed, message):
    """A misspelt name in a size would change nothing silently; the named fix plans."""
    value = '["eval.part_size=8"]'
    with pytest.raises(AdvPurifyError, match=rf"reproduce.size.{message} of that name; use one of \["):
        Reproduction(["experiment=fmnist_smoke", f"+reproduce.size.{typo}={value}"])
    steps = Reproduction(["experiment=fmnist_smoke", f"++reproduce.size.{fixed}={value}"]).steps
    assert steps[-1].stage == "report"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("budget_minutes=-5", "budget_minutes=-5: it must be a finite number > 0"),
        ("dry_run=maybe", "dry_run='maybe'"),
        ("jobs=0", "jobs=0: it must be a whole number >= 1"),
    ],
)
def test_bad_command_settings_are_refused_in_one_line(override, message):
    from src.evaluation.settings import validate
    from src.runtime.errors import AdvPurifyError

    with pytest.raises(AdvPurifyError, match=message):
        validate(composed("reproduce", ["experiment=fmnist_smoke", override]))
