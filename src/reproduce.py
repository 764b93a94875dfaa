"""`python -m src.reproduce experiment=<data>_<size>` (scripts/reproduce.sh <data> <size>): one
dataset's whole reproduction, stage by stage, as far as the time allows, resumable anywhere.

The plan is the experiment's `reproduce` node: which models (conf/reproduce/<data>.yaml) at
which size (conf/reproduce/size/<size>.yaml). Each step is one `src.train` or `src.eval` run,
composed exactly as its command line would be (the experiment, this command's own overrides,
then the step's), and it is skipped when done by the fingerprints those runs keep themselves:
a model whose checkpoint carries this very training's stamp (`src.train.training_fingerprint`:
its settings and the checkpoints it learned from), a grid whose cells are all in the results
table under this run's fingerprint (`src.eval.run_fingerprint`), a report made from these
results. So a rerun after an interruption does only what is left, a second full run does
nothing, and a model retrained upstream redoes exactly what depends on it. A training stopped
mid-way continues from its last epoch (resume=true).

`jobs=N` runs up to N runs of one stage at once, each in a process of its own: a GPU window
fits several of these small models side by side. Runs of one stage never read each other's
outputs, except the Bayesian tables, which wait for the voters before them (`Step.waits`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from src.defenses.base import defense_class
from src.evaluation.grid import evaluate, grid_state
from src.evaluation.settings import validate
from src.report import report
from src.reporting.rows import append_rows, content_digest, fingerprint, read_rows
from src.runtime.configs import CONF_DIR, composed, options, require_readable_conf
from src.runtime.console import console, user_errors
from src.runtime.deadline import OutOfTime
from src.runtime.errors import AdvPurifyError
from src.runtime.provenance import git_commit
from src.train import interrupted, superseded, train, training_state

STAGES = ("targets", "surrogates", "purifiers", "retrained", "voters", "attacks", "report")


@dataclass(frozen=True)
class Step:
    """One run of the plan: `entry` (train | eval | report) with its overrides."""

    stage: str
    entry: str
    overrides: tuple[str, ...] = ()
    label: str = ""  # what the run is, without its sizes
    waits: bool = False  # starts only after the runs of its stage before it (it reads them)


def merged(*groups: Iterable[str]) -> tuple[str, ...]:
    """Overrides in order, a key given again replacing its earlier value in place (Hydra refuses
    a key twice; the plan's layers each may set one)."""
    found: dict[str, str] = {}
    for group in groups:
        for override in group:
            found[override.partition("=")[0].lstrip("+~")] = override
    return tuple(found.values())


def listed(values: Iterable[object]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def check_names(size: DictConfig) -> None:
    """A size's overrides per stage, model and attack are looked up by name, so a misspelt name
    would silently change nothing: each must name a config that exists (not one of this plan's
    runs: a plan narrowed on the command line still uses the same size)."""
    attacks, defenses = options("attack"), options("defense")
    models = options("classifier") + defenses
    named = [("stages", "stage", STAGES), ("models", "model", models), ("fits", "model", models)]
    named += [("attacks", "attack", attacks), ("through", "attack", attacks)]
    named += [(f"through.{a}", "defense", defenses) for a in size.get("through") or {}]
    for where, kind, known in named:
        for name in OmegaConf.select(size, where) or {}:
            if name not in known:
                raise AdvPurifyError(
                    f"reproduce.size.{where}.{name}: no {kind} of that name; use one of {sorted(known)}"
                )


def plan(spec: DictConfig, voting: DictConfig | None, threats: dict[str, DictConfig]) -> list[Step]:
    """Every run of the reproduction in stage order, from the configs of its voting defense and
    of its threats (the surrogates they craft on, whether they choose a white-box target)."""
    check_names(spec.size)
    steps, own = training_steps(spec, voting, threats)
    return [*steps, *attack_steps(spec, threats, own), Step("report", "report", label="src.report")]


def training_steps(
    spec: DictConfig, voting: DictConfig | None, threats: dict[str, DictConfig]
) -> tuple[list[Step], dict[str, list[str]]]:
    """The trainings, stage by stage (targets, surrogates, purifiers, retrained, voters), and
    each defense's own overrides for the runs that attack it."""
    size = spec.size
    models = size.models or {}
    fits = size.fits or {}

    def trained(stage: str, model: str, own: list[str], *more: Iterable[str]) -> Step:
        # a model's `fits` shape its own training alone: not a target retrained on its outputs
        fit = fits.get(model, []) if stage != "retrained" else []
        layers = (own, size.train, (size.stages or {}).get(stage, []), *more, models.get(model, []), fit)
        return Step(stage, "train", merged(*layers), " ".join(own))

    steps = [trained("targets", t, [f"classifier={t}"]) for t in spec.targets]
    surrogates = dict.fromkeys(s for t in threats.values() for s in t.get("surrogates", []))
    steps += [trained("surrogates", s, [f"classifier={s}"]) for s in surrogates]
    steps += [trained("purifiers", p, [f"defense={p}"]) for p in spec.purifiers]
    steps += [trained("retrained", p, ["task=retrain", f"defense={p}"]) for p in spec.retrain_on]
    own = {d: list(models.get(d, [])) for d in ["none", *spec.purifiers]}
    if voting is not None:
        if size.voters is not None and not (isinstance(size.voters, int) and size.voters >= 1):
            raise AdvPurifyError(
                f"reproduce.size.voters={size.voters!r}: it must be a whole number >= 1, or null for all"
            )
        pairs, own[voting.name] = defense_class(voting._target_).parts_to_train(voting, size.voters)
        steps += [
            trained("voters", v, ["task=retrain", f"defense={p}", f"classifier={v}"], models.get(p, []))
            for v, p in pairs
        ]
        tables = ["task=tables", f"defense={voting.name}"]
        tabled = merged(tables, size.train, own[voting.name])
        steps.append(Step("voters", "train", tabled, " ".join(tables), waits=True))
    return steps, own


def attack_steps(spec: DictConfig, threats: dict[str, DictConfig], own: dict[str, list[str]]) -> list[Step]:
    """The clean rows, every attack under every threat over the eps grid, and AutoAttack beside
    every headline number; `own` holds each defense to attack and its overrides."""
    size, defenses = spec.size, list(own)

    def evaluated(defense: str, attack: str, what: list[str]) -> Step:
        runs = [f"defense={defense}", f"attack={attack}", *what]
        sized = (size.attacks or {}).get(attack, [])
        through = ((size.through or {}).get(attack) or {}).get(defense, [])
        return Step("attacks", "eval", merged(runs, sized, own[defense], through), " ".join(runs))

    eps = f"eval.eps={listed(spec.eps)}"
    # the clean row (Table 5.1: with the target retrained on the purifier's outputs where it is)
    clean = ["eval.eps=[0]", f"eval.n={size.n_clean}"]
    steps = [evaluated(d, "fgsm", clean) for d in defenses]
    steps += [evaluated(d, "fgsm", [*clean, "retrained=true"]) for d in spec.retrain_on]
    for threat in spec.threats:
        n = size.n_pipeline if threat == "pipeline" else size.n
        for attack in spec.attacks:  # defenses innermost: oblivious threats share the crafted images
            for d in defenses:
                if threat == "pipeline" and d == "none":
                    continue  # the pipeline of no defense is the classifier threat
                what = [f"threat={threat}", f"eval.n={n}", eps, *target_choice(threats[threat], d, spec)]
                steps.append(evaluated(d, attack, what))
    for d in defenses if spec.autoattack_eps else []:
        threat = "classifier" if d == "none" else "pipeline"
        aa = [f"threat={threat}", f"eval.n={size.n_autoattack}", f"eval.eps={listed(spec.autoattack_eps)}"]
        steps.append(evaluated(d, "autoattack", aa))
    return steps


def target_choice(threat: DictConfig, defense: str, spec: DictConfig) -> list[str]:
    """A threat that chooses its white-box target (`paper`) attacks and is scored by the target
    retrained on the defense's outputs where the plan retrains one (Table 5.1's protocol, the
    dissertation's section 5.4.1), else by the original target."""
    if "white_box" not in threat:
        return []
    return ["retrained=true"] if defense in spec.retrain_on else ["threat.white_box=original"]


@dataclass
class Tally:
    """What one stage did: steps skipped as done, steps run, and their seconds."""

    done: int = 0
    ran: int = 0
    seconds: float = 0.0
    left: int = 0


def conf_digest() -> str:
    """The content of conf/: with the overrides, all a run's composed config depends on."""
    digest = hashlib.sha256()
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        digest.update(str(path.relative_to(CONF_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def execute(base: list[str], step: Step, deadline: float | None = None) -> None:
    """One train or eval run, composed as its command line would be, stopped at `deadline`
    (src.runtime.deadline)."""
    cfg = composed(step.entry, [*base, *step.overrides])
    if step.entry == "eval":
        evaluate(cfg, deadline)
    elif interrupted(cfg):
        console.print(f"[yellow]continuing an interrupted training[/] {step.label}")
        train(composed("train", [*base, *step.overrides, "resume=true"]), deadline)
    else:
        train(cfg, deadline)


def job(base: list[str], step: Step, threads: int, deadline: float | None) -> None:
    """A parallel run (a fresh process): its share of the CPU threads, so N jobs do not
    oversubscribe the cores, then the run."""
    torch.set_num_threads(threads)
    execute(base, step, deadline)


class InProcess:
    """jobs=1: each run in this process, one after another; a Ctrl-C stops it where it is."""

    def submit(self, fn: Callable[..., None], *args: object) -> Future:
        future: Future = Future()
        try:
            fn(*args)
        except Exception as err:  # handed to the caller, as a parallel job's error would be
            future.set_exception(err)
        else:
            future.set_result(None)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing runs in the background."""


def waves(steps: list[Step]) -> list[list[int]]:
    """The plan's runs as groups that may run at once: one stage's, split where a run waits."""
    groups: list[list[int]] = []
    for index, step in enumerate(steps):
        if not groups or step.waits or step.stage != steps[groups[-1][0]].stage:
            groups.append([])
        groups[-1].append(index)
    return groups


class Reproduction:
    """The plan of one experiment, with what is done, and the runs that do the rest.

    Composing a run's config takes Hydra a quarter of a second, too long to ask of every one of
    hundreds of runs on each start. So a run found done is remembered (`.reproduce-memo.json`
    in the results folder) by its overrides and conf/'s content, with the checkpoints and
    results rows that made it done; while those are unchanged it is done without composing."""

    def __init__(self, base: list[str]) -> None:
        self.base = base
        self.cfg = composed("train", base)
        if "reproduce" not in self.cfg:
            experiments = [e for e in options("experiment") if "_" in e]
            raise AdvPurifyError(
                f"this experiment has no reproduction plan: choose experiment= one of {experiments}"
            )
        spec = self.cfg.reproduce
        voting = composed("train", [*base, f"defense={spec.voting}"]).defense if spec.voting else None
        threats = {t: composed("train", [*base, f"threat={t}"]).threat for t in spec.threats}
        self.steps = plan(spec, voting, threats)
        results = Path(self.cfg.paths.results_dir)
        self.report_stamp = Path(self.cfg.paths.report_dir) / ".reproduce-report"
        self.memo_path = results / ".reproduce-memo.json"
        self.memo = json.loads(self.memo_path.read_text()) if self.memo_path.exists() else {}
        self.conf = conf_digest()
        self.rows: tuple[tuple[int, int], dict[str, set[float]]] | None = None

    def composed(self, step: Step) -> DictConfig:
        return composed(step.entry, [*self.base, *step.overrides])

    def results_digest(self) -> str:
        """The content of what the report reads: the results table and the analyses' tables."""
        tables = [
            p
            for p in Path(self.cfg.paths.results_dir).glob("*.csv")
            if p.with_suffix(".layout.json").exists()
        ]
        return fingerprint({}, [self.cfg.paths.results_file, *sorted(tables)])

    def log(self, step: Step, seconds: float, outcome: str) -> None:
        """One row per run in the results folder's reproduce_log.csv: what ran, how long, how it ended."""
        row = {"stage": step.stage, "entry": step.entry, "run": step.label, "seconds": round(seconds, 1)}
        row |= {"outcome": outcome, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git_commit()}
        append_rows(Path(self.cfg.paths.results_dir) / "reproduce_log.csv", [row], tuple(row))

    def finished(self, stamp: str) -> set[float]:
        """The eps of the results rows written under a run fingerprint (the table read once
        per change)."""
        path = Path(self.cfg.paths.results_file)
        version = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else (0, 0)
        if self.rows is None or self.rows[0] != version:
            found: dict[str, set[float]] = {}
            for row in read_rows(path):
                found.setdefault(row.get("fingerprint", ""), set()).add(float(row["eps"]))
            self.rows = (version, found)
        return self.rows[1].get(stamp, set())

    def key(self, step: Step) -> str:
        blob = json.dumps([self.conf, self.base, step.entry, step.overrides])
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def remembered(self, step: Step) -> bool:
        entry = self.memo.get(self.key(step))
        if entry is None or any(content_digest(f) != d for f, d in entry["files"].items()):
            return False
        return "stamp" not in entry or set(entry["eps"]) <= self.finished(entry["stamp"])

    def remember(self, step: Step, files: list[Path], **rows: object) -> None:
        self.memo[self.key(step)] = {"files": {str(f): content_digest(f) for f in files}, **rows}

    def save_memo(self) -> None:
        self.memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.memo_path.with_name(self.memo_path.name + ".tmp")
        tmp.write_text(json.dumps(self.memo, indent=0))
        os.replace(tmp, self.memo_path)

    def is_done(self, step: Step) -> bool:
        if step.entry == "report":
            return self.report_stamp.exists() and self.report_stamp.read_text() == self.results_digest()
        return self.remembered(step) or self.check(step, self.composed(step))

    def check(self, step: Step, cfg: DictConfig) -> bool:
        """Whether the run of cfg is done, by its own fingerprints; remembered if so."""
        if step.entry == "train":
            done, files = training_state(cfg)
            if done:
                self.remember(step, files)
            return done
        stamp, files, eps_grid = grid_state(cfg)
        done = not cfg.eval.recompute and set(eps_grid) <= self.finished(stamp)
        if done:
            self.remember(step, files, stamp=stamp, eps=eps_grid)
        return done

    def superseded(self, done: list[bool]) -> list[str]:
        """The published models that runs still to do would replace though trained otherwise
        (a default changed since): each run would refuse on reaching it, so they are named
        together before anything starts."""
        todo = [s for s, d in zip(self.steps, done, strict=True) if s.entry == "train" and not d]
        return [found for step in todo if (found := superseded(self.composed(step)))]

    def report(self) -> None:
        published = OmegaConf.to_container(composed("report", []).published, resolve=True)
        report(self.cfg.paths.results_file, self.cfg.paths.report_dir, published)
        self.report_stamp.write_text(self.results_digest())

    def finish(self, step: Step) -> None:
        """Remember a run that ended well, for the next start."""
        if step.entry != "report":
            self.check(step, self.composed(step))
            self.save_memo()


def show_plan(steps: list[Step], done: list[bool], name: str) -> None:
    table = Table("stage", "runs", "done", "to do", "first to do", title=f"reproduction {name}")
    for stage in STAGES:
        mine = [(s, d) for s, d in zip(steps, done, strict=True) if s.stage == stage]
        todo = [s for s, d in mine if not d]
        table.add_row(
            stage, str(len(mine)), str(len(mine) - len(todo)), str(len(todo)), todo[0].label if todo else ""
        )
    console.print(table)


def show_summary(tallies: dict[str, Tally], stopped: str) -> None:
    table = Table("stage", "skipped (done)", "ran", "seconds", "left", title=f"reproduction: {stopped}")
    for stage in STAGES:
        t = tallies[stage]
        table.add_row(stage, str(t.done), str(t.ran), f"{t.seconds:.0f}", str(t.left))
    console.print(table)


def reproduce(
    base: list[str],
    budget_minutes: float | None,
    dry_run: bool,
    clock: Callable[[], float] = time.monotonic,
    jobs: int = 1,
) -> dict[str, Tally]:
    """Run what is left of the plan in order, up to `jobs` runs of a stage at once; once
    `budget_minutes` are spent, start no run, no eps of a running grid and no epoch of a
    running training (src.runtime.deadline)."""
    start = clock()
    deadline = None if budget_minutes is None else time.time() + 60 * budget_minutes
    work = Reproduction(base)
    done = [work.is_done(step) for step in work.steps]
    work.save_memo()
    show_plan(work.steps, done, work.cfg.reproduce.name)
    stale = work.superseded(done)
    if stale and not dry_run:
        raise AdvPurifyError(
            f"{len(stale)} published model(s) were trained with other settings than this plan's, "
            f"and its runs would refuse to replace them: {'; '.join(stale)}: move them away "
            "(into a folder of your own), then run it again"
        )
    for found in stale:
        console.print(f"[yellow]trained with other settings; move it away before a real run:[/] {found}")
    tallies = {stage: Tally() for stage in STAGES}
    if dry_run:
        for step, finished in zip(work.steps, done, strict=True):
            tallies[step.stage].left += not finished
        return tallies

    def over() -> bool:
        return budget_minutes is not None and clock() - start > 60 * budget_minutes

    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 else InProcess()
    threads = max(1, torch.get_num_threads() // jobs)
    stopped = "finished"
    plan = waves(work.steps)

    def unreached_as_planned(reached: int) -> None:
        """A stop before the last wave: the later waves' runs count as the plan found them."""
        for index in (i for later in plan[reached:] for i in later):
            tallies[work.steps[index].stage].done += done[index]

    reached = 0
    try:
        for reached, wave in enumerate(plan, start=1):
            if not run_wave(work, wave, done, tallies, pool, jobs, threads, deadline, over):
                stopped = f"stopped after {budget_minutes:g} minutes; run it again to go on"
                unreached_as_planned(reached)
                break
    except BaseException as err:  # an error or Ctrl-C: say how far it got, then stop as they do
        unreached_as_planned(reached)
        show_summary(settled(tallies, work.steps), f"stopped: {type(err).__name__} (see reproduce_log.csv)")
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    show_summary(settled(tallies, work.steps), stopped)
    console.print(f"results, report and figures: {work.cfg.paths.results_dir}")
    return tallies


def settled(tallies: dict[str, Tally], steps: list[Step]) -> dict[str, Tally]:
    """The tallies with what is left per stage: every run neither found done nor run."""
    for stage, tally in tallies.items():
        tally.left = sum(s.stage == stage for s in steps) - tally.done - tally.ran
    return tallies


@dataclass
class Wave:
    """The runs of one wave going at once, the first failure, and whether the budget holds."""

    work: Reproduction
    tallies: dict[str, Tally]
    running: dict[Future, tuple[Step, float]] = field(default_factory=dict)
    failure: BaseException | None = None
    in_budget: bool = True

    def start(self, step: Step, submit: Callable[[Step], Future]) -> None:
        console.rule(f"[bold]{step.stage}[/]: {step.entry} {step.label}")
        began = time.monotonic()
        try:
            self.running[submit(step)] = (step, began)
        except BaseException as err:  # Ctrl-C in a run of this process
            self.work.log(step, time.monotonic() - began, f"stopped: {type(err).__name__}")
            raise

    def collect(self) -> None:
        """Wait for the next runs to end and book them: done, out of time, or failed."""
        try:
            ended, _ = wait(self.running, return_when=FIRST_COMPLETED)
        except BaseException as err:  # Ctrl-C while parallel runs go on
            for step, began in self.running.values():
                self.work.log(step, time.monotonic() - began, f"stopped: {type(err).__name__}")
            raise
        for future in ended:
            step, began = self.running.pop(future)
            seconds, error = time.monotonic() - began, future.exception()
            if isinstance(error, OutOfTime):  # what it finished is kept
                self.work.log(step, seconds, "stopped: out of time")
                console.print(f"[yellow]{step.label}[/]: {error}")
                self.in_budget = False
            elif error is not None:
                self.work.log(step, seconds, f"stopped: {type(error).__name__}")
                self.failure = self.failure or error
            else:
                self.work.finish(step)
                self.work.log(step, seconds, "done")
                self.tallies[step.stage].ran += 1
                self.tallies[step.stage].seconds += seconds


def run_wave(
    work: Reproduction,
    wave: list[int],
    done: list[bool],
    tallies: dict[str, Tally],
    pool: ProcessPoolExecutor | InProcess,
    jobs: int,
    threads: int,
    deadline: float | None,
    over: Callable[[], bool],
) -> bool:
    """Run one wave's unfinished runs, `jobs` at a time; False when the budget stopped it
    (before a run, or a run at its `deadline`). A failed run stops new ones; those already
    going end and are kept, then the error is raised."""
    queue: deque[int] = deque()
    for index in wave:
        if done[index] and work.is_done(work.steps[index]):  # again: a run upstream may have undone it
            tallies[work.steps[index].stage].done += 1
        else:
            queue.append(index)

    def submit(step: Step) -> Future:
        if step.entry == "report":
            return InProcess().submit(work.report)
        return pool.submit(job, work.base, step, threads, deadline)

    going = Wave(work, tallies)
    while queue or going.running:
        while queue and len(going.running) < jobs and going.failure is None and going.in_budget:
            if over():
                going.in_budget = False
                break
            if conf_digest() != work.conf:  # later runs would compose configs the plan never saw
                going.failure = AdvPurifyError(
                    "conf/ changed while this reproduction ran: run it again to plan with conf/ as it is now"
                )
                break
            going.start(work.steps[queue.popleft()], submit)
        if not going.running:
            break
        going.collect()
    if going.failure is not None:
        raise going.failure
    return going.in_budget


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="reproduce")
def main(cfg: DictConfig) -> None:
    mine = ("budget_minutes", "dry_run", "jobs")
    base = [o for o in HydraConfig.get().overrides.task if o.partition("=")[0] not in mine]
    with user_errors():
        validate(cfg)
        reproduce(base, cfg.budget_minutes, cfg.dry_run, jobs=cfg.jobs)


if __name__ == "__main__":
    from src.reproduce import main as importable_main

    with user_errors():
        require_readable_conf()
    importable_main()
