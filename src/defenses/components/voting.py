"""Collective voting and the Bayesian update of SFL-VAE and Defense-CycleGAN (SPEC 3.1).

`Voting` draws R of its M classifiers per input (an attacker cannot know which) and takes
their majority vote, the evidence e_B. `BayesianVote` combines e_B with e_A, the target's
prediction on the reconstruction, through conditional probability tables counted on the
training set: argmax_j p(e_A | e_B, c_j) p(e_B | c_j) p(c_j). Everything runs on whole
batches as tensors; no Python loop over inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from src.runtime.errors import AdvPurifyError

Prior = Literal["uniform", "target_softmax", "class_frequency"]
PRIORS = ("uniform", "target_softmax", "class_frequency")


class Voting(nn.Module):
    """Majority vote of R classifiers drawn at random per input from M.

    Draws come from the module's own generator, so a seed reproduces them (`reseed`) and
    different seeds give different draws. A tie goes to the tied class named by the
    earliest-drawn voter: random, like the draw, and never biased towards low class indices.
    """

    def __init__(self, voters: Sequence[nn.Module], draws: int, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        if not 1 <= draws <= len(voters):
            raise AdvPurifyError(
                f"defense.draws={draws} must lie between 1 and the {len(voters)} voters of defense.voters: "
                f"set defense.draws={min(max(draws, 1), len(voters))} or list more voters"
            )
        self.voters = nn.ModuleList(voters)
        self.draws, self.num_classes = draws, num_classes
        self.generator = torch.Generator()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def draw(
        self, n: int, draws: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(n, R) indices of distinct voters per input (a tensor); R and the generator default to
        the module's."""
        order = torch.rand(n, len(self.voters), generator=generator or self.generator).argsort(1)
        return order[:, : draws or self.draws]

    @torch.no_grad()
    def predictions(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M) every voter's predicted class."""
        return torch.stack([voter(x).argmax(1) for voter in self.voters], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vote(self.predictions(x), self.draw(len(x)).to(x.device))

    def vote(self, predictions: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
        """Majority class of predictions (N, M) over the drawn voters (N, R)."""
        ballots = predictions.gather(1, drawn)  # N x R, in draw order
        counts = F.one_hot(ballots, self.num_classes).sum(1)  # N x C
        tied = counts == counts.max(1, keepdim=True).values  # N x C
        first = tied.gather(1, ballots).int().argmax(1)  # earliest ballot naming a tied class
        return ballots.gather(1, first[:, None]).squeeze(1)


class BayesianVote(nn.Module):
    """Posterior over classes from evidence e_A (target) and e_B (vote), SPEC 3.1.

    `fit` counts p(e_B | c) and p(e_A | e_B, c) on labelled training predictions, with
    add-one smoothing so an unseen combination is unlikely, not impossible. The tables are
    buffers: they are saved and loaded with the defense's checkpoint.
    """

    def __init__(self, num_classes: int, prior: Prior = "uniform") -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior={prior!r} is unknown: choose one of {list(PRIORS)}")
        self.prior = prior
        c = num_classes
        self.register_buffer("p_vote", torch.full((c, c), 1 / c))  # [c, e_B]
        self.register_buffer("p_target", torch.full((c, c, c), 1 / c))  # [c, e_B, e_A]
        self.register_buffer("class_frequency", torch.full((c,), 1 / c))

    @property
    def num_classes(self) -> int:
        return len(self.class_frequency)

    @torch.no_grad()
    def fit(self, e_a: torch.Tensor, e_b: torch.Tensor, y: torch.Tensor) -> None:
        c = self.num_classes
        joint = torch.ones(c, c, c, dtype=torch.float64)  # add-one smoothing
        joint.view(-1).index_put_((y * c * c + e_b * c + e_a,), torch.ones_like(y, dtype=torch.float64), True)
        vote_counts = joint.sum(2) - (c - 1)  # one add-one per (c, e_B) cell, not c of them
        self.p_target.copy_(joint / joint.sum(2, keepdim=True))
        self.p_vote.copy_(vote_counts / vote_counts.sum(1, keepdim=True))
        self.class_frequency.copy_(torch.bincount(y, minlength=c).double().add(1) / (len(y) + c))

    def forward(
        self, e_a: torch.Tensor, e_b: torch.Tensor, target_probs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(N, C) log posterior, up to a constant per row."""
        log_post = self.p_target[:, e_b, e_a].T.log() + self.p_vote[:, e_b].T.log()
        if self.prior == "class_frequency":
            log_post = log_post + self.class_frequency.log()
        elif self.prior == "target_softmax":
            if target_probs is None:
                raise ValueError("prior=target_softmax needs the target's softmax on the input")
            log_post = log_post + target_probs.clamp_min(1e-12).log()
        return log_post
