"""A purifier followed by collective voting and the Bayesian update (SPEC 3.1; chapters 3-4).

`purify` is the purifier's own, so every generic result (the target on reconstructions) still
holds; `decide` adds the two decisions of the source, the vote of R of M voters retrained on
the purifier's outputs (e_B) and the Bayesian update of e_B with the target's prediction on
the reconstruction (e_A). `src.eval` reports each as its own accuracy column.

Built from checkpoints, not trained: the purifier (`checkpoints/<data>/<purifier>.ckpt`), the
voters (`<voter>+<purifier>`, from `src.train task=retrain`) and the tables counted on the
training set by `src.train task=tables` (`prepare`, saved as `<name>-tables-<classifier>`).
It offers section 3.4.5's voting analysis (`eval.analyses=[vote_analysis]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from src.defenses.base import CompositeDefense
from src.defenses.components.voting import BayesianVote, Voting
from src.defenses.vote_analysis import VOTE_ANALYSIS
from src.runtime import checkpoints
from src.runtime.console import console
from src.runtime.devices import resolve_device
from src.runtime.errors import build
from src.runtime.rules import COUNT, whole_at_least


def tables_path(
    checkpoint_dir: str | Path, data: str, name: str, classifier: str, input_shape: Sequence[int] | None
) -> Path:
    return checkpoints.find(checkpoint_dir, data, f"{name}-tables-{classifier}", input_shape)


class VotingDefense(CompositeDefense):
    analyses = (VOTE_ANALYSIS,)

    rules = {"draws": COUNT, "seed": whole_at_least(0)}

    def __init__(
        self,
        name: str,
        purifier: nn.Module,
        voters: list[nn.Module],
        num_classes: int,
        draws: int,
        seed: int = 0,
        tables: BayesianVote | None = None,
    ) -> None:
        super().__init__()
        self.name, self.purifier, self.tables = name, purifier, tables
        self.voting = Voting(voters, draws, num_classes, seed)
        # what an attack differentiates is `purify`, the purifier's own; the voter draws are
        # random too, but they only enter `decide`, which no gradient passes through
        self.gradient, self.stochastic = purifier.gradient, purifier.stochastic

    @classmethod
    def from_checkpoints(
        cls,
        cfg: DictConfig,
        data: str,
        checkpoint_dir: str | Path,
        input_shape: tuple[int, ...] | None,
        classifier: str | None = None,
    ) -> VotingDefense:
        """`classifier` names the target whose tables to load; None builds without tables (to count them)."""

        def load(name: str, kind: str) -> nn.Module:
            path = checkpoints.find(checkpoint_dir, data, name, input_shape)
            hint = checkpoints.train_hint(data, input_shape, kind, name)
            return checkpoints.load(path, kind, data, input_shape, hint, name=name)

        purifier = load(cfg.purifier, "defense")
        voters = [load(checkpoints.retrained_name(v, cfg.purifier), "classifier") for v in cfg.voters]
        tables = None
        if classifier is not None:
            size = f" data.image_size={input_shape[-1]}" if input_shape is not None else ""
            voters_set = ",".join(cfg.voters)
            hint = (
                f"count them with `python -m src.train data={data}{size} task=tables defense={cfg.name} "
                f"'defense.voters=[{voters_set}]'`"
            )
            tables = checkpoints.load(
                tables_path(checkpoint_dir, data, cfg.name, classifier, input_shape),
                "tables",
                data,
                input_shape,
                hint,
            )
            tables.prior = cfg.prior
        num_classes = purifier.hparams.num_classes
        return cls(cfg.name, purifier, voters, num_classes, cfg.draws, cfg.seed, tables)

    @classmethod
    def parts_to_train(cls, cfg: DictConfig, limit: int | None) -> tuple[list[tuple[str, str]], list[str]]:
        voters = list(cfg.voters)[:limit] if limit else list(cfg.voters)
        narrowed = [f"defense.voters=[{','.join(voters)}]", f"defense.draws={min(cfg.draws, len(voters))}"]
        return [(v, cfg.purifier) for v in voters], narrowed

    @classmethod
    def retrained_on(cls, cfg: Any) -> str:
        return cfg.purifier  # its target is retrained on its purifier's outputs

    @classmethod
    def prepared_path(
        cls, cfg: DictConfig, checkpoint_dir: str | Path, data: str, classifier: str, shape: Sequence[int]
    ) -> Path:
        return tables_path(checkpoint_dir, data, cfg.name, classifier, shape)

    @classmethod
    def part_paths(
        cls,
        cfg: DictConfig,
        data: str,
        checkpoint_dir: str | Path,
        input_shape: Sequence[int],
        classifier: str | None,
    ) -> list[Path]:
        names = [cfg.purifier, *(checkpoints.retrained_name(v, cfg.purifier) for v in cfg.voters)]
        paths = [checkpoints.find(checkpoint_dir, data, name, input_shape) for name in names]
        if classifier is not None:
            paths.append(tables_path(checkpoint_dir, data, cfg.name, classifier, input_shape))
        return paths

    @classmethod
    def prepare(cls, cfg: DictConfig) -> dict[str, Any]:
        """SPEC 3.1: p(e_B | c) and p(e_A | e_B, c) counted on the training split, saved by name."""
        datamodule = build(cfg.data.module)
        datamodule.setup("fit")
        data, shape, ckpt_dir = datamodule.name, datamodule.input_shape, cfg.paths.checkpoint_dir
        device = resolve_device(cfg.device)
        defense = cls.from_checkpoints(cfg.defense, data, ckpt_dir, shape).eval().to(device)
        name = cfg.classifier.name
        if cfg.retrained:
            name = checkpoints.retrained_name(name, cfg.defense.purifier)
        path = cfg.ckpt or checkpoints.stable_path(ckpt_dir, data, name, shape)
        hint = checkpoints.train_hint(data, shape, "classifier", name)
        classifier = checkpoints.load(path, "classifier", data, shape, hint, name=name).to(device)
        x, y = (t.to(device) for t in datamodule.splits["train"][:])
        tables = defense.count_tables(classifier, x, y, cfg.eval.batch_size, cfg.defense.prior)
        dest = tables_path(ckpt_dir, data, cfg.defense.name, name, shape)
        hparams = {"num_classes": datamodule.num_classes, "prior": cfg.defense.prior}
        checkpoints.save(tables, dest, "tables", hparams, data, shape)
        console.print(f"[bold green]tables[/] {dest}  (counted on {len(y)} training images, target {name})")
        return {"checkpoint": str(dest)}

    @classmethod
    def parts_hint(cls, cfg: DictConfig) -> str:
        return (
            f"train its purifier (defense={cfg.purifier}) and voters (task=retrain defense={cfg.purifier} "
            f"classifier=<voter>), then count its tables with task=tables defense={cfg.name}"
        )

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return self.purifier.purify(x)

    @torch.no_grad()
    def evidence(
        self, classifier: nn.Module, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """e_A, the target's prediction on the reconstruction; e_B, the vote on it; and every
        voter's own prediction (N, M), from which the vote is taken."""
        x_hat = self.purify(x)
        members = self.voting.predictions(x_hat)
        e_b = self.voting.vote(members, self.voting.draw(len(x)).to(x.device))
        return classifier(x_hat).argmax(1), e_b, members

    @torch.no_grad()
    def count_tables(
        self, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, prior: str
    ) -> BayesianVote:
        e_a, e_b, _ = zip(*(self.evidence(classifier, xb) for xb in x.split(batch_size)), strict=True)
        tables = BayesianVote(self.voting.num_classes, prior)
        tables.fit(torch.cat(e_a).cpu(), torch.cat(e_b).cpu(), y.cpu())
        return tables

    @torch.no_grad()
    def decide(self, classifier: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted classes by the vote and, when the tables are loaded, by the Bayesian update;
        and the voters' own predictions, whose mean accuracy is the source's baseline ("averaging
        individual VNNs")."""
        e_a, e_b, members = self.evidence(classifier, x)
        decisions = {"vote": e_b, "voter_mean": members}
        if self.tables is not None:
            probs = classifier(x).softmax(1) if self.tables.prior == "target_softmax" else None
            decisions["bayes"] = self.tables(e_a, e_b, probs).argmax(1)
        return decisions
