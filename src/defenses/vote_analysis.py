"""Why voting helps, and why its gain flattens (SPEC 3.1; section 3.4.5, Figures 3.14-3.16).

From every voter's prediction on the purified inputs:
- `recovery_rate` at R voters: of all voter mispredictions (voter v wrong on input i), the
  share where the majority of R voters drawn at random for input i is right, i.e. the
  mispredictions the vote recovers (R = 1..M; the draws are seeded and the defense's own
  draws are left untouched);
- `overlap_wrong` at k voters: of the inputs at least one of the first k voters gets wrong,
  the share all k get wrong (k = 1..M, in config order). It falls as k grows when the
  voters err on different inputs: the diversity a vote needs;
- `overlap_correct` at k voters: the same for correct predictions;
- `voter_accuracy` at k: the k-th voter's own accuracy (config order), so that the vote stands
  beside each voter and not only beside their mean (the eval row's `voter_mean_*`).
"""

from __future__ import annotations

from typing import Any

import torch

from src.defenses.base import Analysis


@torch.no_grad()
def vote_analysis(
    defense: Any, classifier, x, x_adv: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int
) -> list[tuple[str, int, float]]:
    """(metric, voters, value) triples on the inputs `x_adv`."""
    voting = defense.voting
    predictions = torch.cat([voting.predictions(defense.purify(xb)) for xb in x_adv.split(batch_size)])
    wrong = predictions != y[:, None]  # N x M
    generator = torch.Generator().manual_seed(seed)
    out = []
    for draws in range(1, len(voting.voters) + 1):
        vote = voting.vote(predictions, voting.draw(len(y), draws, generator).to(y.device))
        recovered = (wrong & (vote == y)[:, None]).sum()
        out.append(("recovery_rate", draws, (recovered / wrong.sum().clamp_min(1)).item()))
    for k in range(1, len(voting.voters) + 1):
        for metric, hits in (("overlap_wrong", wrong[:, :k]), ("overlap_correct", ~wrong[:, :k])):
            out.append((metric, k, (hits.all(1).sum() / hits.any(1).sum().clamp_min(1)).item()))
        out.append(("voter_accuracy", k, (~wrong[:, k - 1]).float().mean().item()))
    return out


VOTE_ANALYSIS = Analysis(
    name="vote_analysis",
    columns=("metric", "voters"),
    measure=vote_analysis,
    axis="voters",
    lines=("eps",),
    line_label="eps {eps}",
    title="Voting analysis",
    axis_label="R",
    description="Section 3.4.5's rates (0-1) against the number of voters.",
)
