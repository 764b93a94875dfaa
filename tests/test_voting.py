"""Collective voting and the Bayesian update (SPEC 3.1), on constructed predictions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.defenses.components.voting import BayesianVote, Voting
from src.runtime.errors import AdvPurifyError


class Constant(nn.Module):
    """A voter that always predicts one class."""

    def __init__(self, label: int, num_classes: int = 10) -> None:
        super().__init__()
        self.label, self.num_classes = label, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((len(x),), self.label), self.num_classes).float()


def test_all_voters_give_the_plain_majority():
    voting = Voting([Constant(c) for c in (3, 3, 5, 3, 5)], draws=5, num_classes=10)
    assert voting(torch.zeros(4, 1, 2, 2)).tolist() == [3, 3, 3, 3]


def test_a_tie_goes_to_the_earliest_drawn_voter():
    voting = Voting([Constant(0)] * 4, draws=4, num_classes=10)
    predictions = torch.tensor([[7, 2, 2, 7], [2, 7, 7, 2], [1, 9, 9, 4]])
    drawn = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3], [3, 0, 1, 2]])
    # rows: 7,2,2,7 -> tie 7/2, 7 first; 2,7,7,2 -> 2 first; 4,1,9,9 -> 9 wins outright
    assert voting.vote(predictions, drawn).tolist() == [7, 2, 9]


def test_draws_are_reproducible_under_a_seed_and_vary_across_seeds():
    voters = [Constant(c, 12) for c in range(12)]
    voting = Voting(voters, draws=5, num_classes=12, seed=1)
    x = torch.zeros(64, 1, 2, 2)
    first = voting(x)
    voting.reseed(1)
    assert torch.equal(voting(x), first)
    voting.reseed(2)
    assert not torch.equal(voting(x), first)
    drawn = voting.draw(1000)
    assert all(len(set(row)) == 5 for row in drawn.tolist())  # R distinct voters per input
    assert torch.bincount(drawn.flatten(), minlength=12).min() > 300  # every voter gets drawn


def test_bad_draw_count_is_a_clear_error():
    with pytest.raises(AdvPurifyError, match=r"defense.draws=4 must lie between 1 and the 3 voters.*draws=3"):
        Voting([Constant(0)] * 3, draws=4, num_classes=10)


def fitted(reliable: str, n: int = 5000, prior: str = "uniform") -> BayesianVote:
    torch.manual_seed(0)
    y = torch.randint(0, 10, (n,))
    noise = torch.randint(0, 10, (n,))
    e_a, e_b = (y, noise) if reliable == "target" else (noise, y)
    bayes = BayesianVote(10, prior)
    bayes.fit(e_a, e_b, y)
    return bayes


def test_tables_are_valid_probability_tables():
    bayes = fitted("vote")
    assert torch.allclose(bayes.p_vote.sum(1), torch.ones(10))
    assert torch.allclose(bayes.p_target.sum(2), torch.ones(10, 10))
    assert bayes.p_vote.min() > 0 and bayes.p_target.min() > 0  # add-one: nothing impossible
    assert torch.allclose(bayes.class_frequency.sum(), torch.tensor(1.0))


def test_the_update_follows_whichever_evidence_was_reliable_in_training():
    e_a, e_b = torch.tensor([7, 1, 4]), torch.tensor([3, 8, 4])
    assert fitted("vote")(e_a, e_b).argmax(1).tolist() == [3, 8, 4]
    assert fitted("target")(e_a, e_b).argmax(1).tolist() == [7, 1, 4]


def test_priors():
    bayes = fitted("vote", prior="target_softmax")
    with pytest.raises(ValueError, match="softmax"):
        bayes(torch.tensor([0]), torch.tensor([1]))
    sure = torch.nn.functional.one_hot(torch.tensor([5]), 10).float()
    assert bayes(torch.tensor([0]), torch.tensor([1]), sure).argmax(1).item() == 5  # a certain prior wins
    with pytest.raises(ValueError, match="uniform"):
        BayesianVote(10, "flat")
