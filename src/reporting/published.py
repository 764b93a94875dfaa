"""Our numbers beside the dissertation's (conf/published/): REPORT.md's reproduction tables.

For each dataset and defense, the published clean accuracy (Table 5.1) and the published claim
under attack stand beside ours under each threat model. Ours under attack is the statistic the
claim speaks of, over the claim's attacks and 0 < eps <= max_eps: an `at_least` claim gets our
lowest accuracy, a `below` claim the highest of our per-attack lows. Where some of a claim's
attacks were not run under that threat, only a failure is a verdict: more attacks can only
lower an `at_least` claim's low and raise a `below` claim's high, so a claim that fails on
some of its attacks fails on all of them, while one that holds on some would be flattered by
the missing ones, and the cell says what is missing instead.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from src.reporting.rows import base_name

THREATS = ("classifier", "paper", "pipeline", "transfer")


def claim_text(claim: dict[str, Any]) -> str:
    attacks = ", ".join(claim["attacks"])
    if "at_least" in claim:
        return f">= {claim['at_least']:g} under {attacks}"
    return f"< {claim['below']:g} under each of {attacks}"


def judge(rows: list[dict[str, str]], claim: dict[str, Any], max_eps: float) -> str:
    """Our statistic for the claim with its verdict, or what is missing to judge it."""
    lows: dict[str, tuple[float, float]] = {}
    for row in rows:
        eps = float(row["eps"])
        attack = base_name(row["attack"])
        if attack in claim["attacks"] and 0 < eps <= max_eps:
            accuracy = 100 * float(row["adv_acc"])
            if attack not in lows or accuracy < lows[attack][0]:
                lows[attack] = (accuracy, eps)
    missing = [attack for attack in claim["attacks"] if attack not in lows]
    if not lows:
        return "needs " + ", ".join(missing)
    if "at_least" in claim:
        attack, (accuracy, eps) = min(lows.items(), key=lambda kv: kv[1][0])
        holds = accuracy >= claim["at_least"]
    else:
        attack, (accuracy, eps) = max(lows.items(), key=lambda kv: kv[1][0])
        holds = accuracy < claim["below"]
    if missing and holds:
        return "needs " + ", ".join(missing)
    not_run = f" ({', '.join(missing)} not run)" if missing else ""
    return f"{accuracy:.1f} ({attack} {eps:g}) {'holds' if holds else '**fails**'}{not_run}"


def reproduction_tables(rows: list[dict[str, str]], published: dict[str, Any]) -> list[str]:
    """Markdown: one table per dataset, one line per (defense, target classifier)."""
    cells: dict = defaultdict(lambda: defaultdict(list))  # (data, defense, classifier) -> threat -> rows
    for row in rows:
        cells[row["data"], row["defense"], row["classifier"]][row["threat"]].append(row)
    datasets = sorted({d for d, *_ in cells} | set(published["clean"]) | set(published["attacked"]))
    lines = [
        "## Reproduction: ours beside the published numbers",
        "",
        f"Published: {published['name']}. Accuracy in %. Under attack, each claim is checked over its "
        f"attacks and 0 < eps <= {published['max_eps']:g}; our cell gives the statistic the claim "
        "speaks of (the lowest accuracy, or for a `<` claim the highest per-attack low), where it "
        "occurs, and the verdict. Our clean accuracy is the defended model's on the evaluated images.",
        "",
    ]
    for data in datasets:
        clean = published["clean"].get(data, {})
        attacked = published["attacked"].get(data, {})
        ours = sorted(key[1:] for key in cells if key[0] == data)
        defenses = sorted({d for d, _ in ours} | set(clean) | set(attacked))
        lines += [
            f"### {data}",
            "",
            "| defense | target | clean, published | clean, ours | under attack, published | "
            + " | ".join(f"ours, `{t}`" for t in THREATS)
            + " |",
            "|" + "---|" * (5 + len(THREATS)),
        ]
        for defense in defenses:
            published_clean = f"{clean[defense]:.2f}" if defense in clean else "-"
            claim = attacked.get(defense)
            targets = [c for d, c in ours if d == defense] or ["-"]
            for classifier in targets:
                by_threat = cells.get((data, defense, classifier), {})
                any_row = next((r[0] for r in by_threat.values() if r), None)
                our_clean = f"{100 * float(any_row['purified_clean_acc']):.2f}" if any_row else "not run"
                verdicts = [
                    judge(by_threat[t], claim, published["max_eps"]) if claim and by_threat.get(t) else "-"
                    for t in THREATS
                ]
                lines.append(
                    f"| {defense} | {classifier} | {published_clean} | {our_clean} | "
                    f"{claim_text(claim) if claim else '-'} | " + " | ".join(verdicts) + " |"
                )
        lines.append("")
    return lines
