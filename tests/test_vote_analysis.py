"""Section 3.4.5's voting analysis on a constructed case whose rates are known by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from src.defenses.none import NoDefense
from src.defenses.vote import VotingDefense
from src.defenses.vote_analysis import vote_analysis


class Lookup(nn.Module):
    """A 'classifier' that answers a fixed class per input; input i is the 1-pixel image i."""

    def __init__(self, answers: list[int]) -> None:
        super().__init__()
        self.register_buffer("answers", torch.tensor(answers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.answers[x.flatten(1)[:, 0].long()], 3).float()


# four inputs, all of class 0; three voters
Y = torch.zeros(4, dtype=torch.long)
ANSWERS = [
    [0, 1, 0, 0],  # voter A wrong on input 1
    [0, 1, 2, 0],  # voter B wrong on inputs 1, 2
    [0, 0, 0, 1],  # voter C wrong on input 3
]


def analysis() -> dict[tuple[str, int], float]:
    defense = VotingDefense("vote", NoDefense(), [Lookup(a) for a in ANSWERS], num_classes=3, draws=3)
    x = torch.arange(4).float().view(4, 1, 1, 1)
    return {(m, r): v for m, r, v in vote_analysis(defense, None, None, x, Y, batch_size=2, seed=0)}


def test_recovery_with_every_voter_is_the_share_of_mispredictions_the_majority_fixes():
    rates = analysis()
    # all three vote: input 1 -> 1 (A, B wrong: not recovered); input 2 -> 0 (B's error recovered);
    # input 3 -> 0 (C's error recovered): 2 of the 4 mispredictions
    assert rates["recovery_rate", 3] == pytest.approx(2 / 4)
    assert 0 <= rates["recovery_rate", 1] <= 1


def test_overlap_rates_follow_the_first_k_voters():
    rates = analysis()
    assert rates["overlap_wrong", 1] == 1.0  # one voter overlaps itself
    assert rates["overlap_wrong", 2] == pytest.approx(1 / 2)  # A and B: both wrong on {1} of {1, 2}
    assert rates["overlap_wrong", 3] == 0.0  # nobody is wrong on every input C gets wrong
    assert rates["overlap_correct", 2] == pytest.approx(2 / 3)  # both right on {0, 3} of {0, 2, 3}
    assert rates["overlap_correct", 3] == pytest.approx(1 / 4)  # all right on {0} of {0, 1, 2, 3}


def test_each_voter_accuracy_is_its_own_share_of_right_answers():
    rates = analysis()
    assert [rates["voter_accuracy", k] for k in (1, 2, 3)] == pytest.approx([3 / 4, 2 / 4, 3 / 4])


def test_the_analysis_leaves_the_defense_draws_untouched():
    defense = VotingDefense("vote", NoDefense(), [Lookup(a) for a in ANSWERS], num_classes=3, draws=1)
    x = torch.arange(4).float().view(4, 1, 1, 1)
    defense.voting.reseed(5)
    expected = defense.voting(x)
    defense.voting.reseed(5)
    vote_analysis(defense, None, None, x, Y, batch_size=4, seed=0)
    assert torch.equal(defense.voting(x), expected)
