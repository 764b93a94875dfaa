"""The findings: per dataset and defense, the published figure beside ours under the
dissertation's (oblivious) threat, the adaptive threat and AutoAttack, from committed rows.

`benchmarks/findings.yaml` names, for each defense and reading, the row file and the rows'
names; every number shown comes from those rows through this module (`make findings`), so a
figure in README.md or RESULTS.md cannot drift from its row: the tables sit between
`<!-- findings:NAME -->` markers, and tests/test_findings.py checks they are what the rows give.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.reporting.rows import base_name, read_rows
from src.runtime.console import user_errors
from src.runtime.errors import AdvPurifyError
from src.runtime.yamlfiles import read_yaml

CSV_COLUMNS = (
    "data",
    "defense",
    "reading",
    "size",
    "threat",
    "attack",
    "eps",
    "n",
    "accuracy",
    "seeds",
    "spread",
    "published",
    "source",
)
CSV_THREATS = ("classifier", "pipeline", "transfer")
MARKER = re.compile(
    r"(<!-- findings:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /findings:(?P=name) -->)", re.S
)


@dataclass(frozen=True)
class Cell:
    """One measured number: the mean over the seeds measured of the latest row per seed, and
    half the range they span (0 for one seed), so a difference between two readings can be read
    against how far one reading moves when only its seed changes. `clean` is the accuracy the
    same models reach on the same images unattacked: below the spec's `learned_clean` the model
    has not learned, and what an attack leaves of near-chance accuracy says nothing, so the
    number is not shown."""

    threat: str
    attack: str
    eps: float
    n: int
    accuracy: float
    seeds: int
    spread: float
    source: str
    learned: bool = True
    clean: float | None = None

    @staticmethod
    def over_seeds(
        threat: str,
        attack: str,
        eps: float,
        n: int,
        values: list[float],
        source: str,
        clean: list[float] | None = None,
        learned_clean: float = 0.0,
    ) -> Cell:
        spread = (max(values) - min(values)) / 2
        mean_clean = statistics.fmean(clean) if clean else None
        learned = mean_clean is None or mean_clean >= learned_clean
        return Cell(
            threat, attack, eps, n, statistics.fmean(values), len(values), spread, source, learned, mean_clean
        )


@dataclass
class Reading:
    """One trained reading of a defense and the rows measured on it."""

    data: str
    defense: str
    reading: str
    size: str
    verdict: str
    rows: list[dict[str, str]]
    source: str
    clean_rows: list[dict[str, str]]
    clean_source: str
    adaptive: str  # the threat that sees the purifier: `pipeline` (the target alone: `classifier`)
    decision: str  # whose accuracy: the target's on the purified input (""), or a defense's own
    # decision column prefix (`bayes`: a voting defense's Bayesian update, `vote`: its majority)
    learned_clean: float = 0.0  # the clean accuracy below which an attacked cell is not shown

    @property
    def adv_column(self) -> str:
        return f"{self.decision}_acc" if self.decision else "adv_acc"

    @property
    def clean_column(self) -> str:
        return f"{self.decision}_clean_acc" if self.decision else "purified_clean_acc"

    def cell(self, threat: str, attack: str, eps: float) -> Cell | None:
        at = [r for r in self.rows if r["threat"] == threat and abs(float(r["eps"]) - eps) < 1e-9]
        # the named attack at its config's settings, else its variant (autoattack[version=custom])
        found = [r for r in at if r["attack"] == attack]
        found = found or [r for r in at if base_name(r["attack"]) == attack]
        latest = {r["seed"]: r for r in found}  # the last row of each seed wins
        if not latest:
            return None
        chosen = list(latest.values())
        values = [float(r[self.adv_column]) for r in chosen]
        clean = [float(r[self.clean_column]) for r in chosen if r.get(self.clean_column)]
        n = int(chosen[0]["n"])
        return Cell.over_seeds(threat, attack, eps, n, values, self.source, clean, self.learned_clean)

    def clean(self) -> Cell | None:
        """Accuracy through the purifier on clean images, over the most images measured."""
        rows = self.clean_rows
        if not rows:
            return None
        n = max(int(r["n"]) for r in rows)
        latest = {r["seed"]: r for r in rows if int(r["n"]) == n}
        values = [float(r[self.clean_column]) for r in latest.values()]
        return Cell.over_seeds("clean", "none", 0.0, n, values, self.clean_source)


def rows_of(root: Path, source: str, defense: str, classifier: str) -> list[dict[str, str]]:
    path = root / source
    if not path.exists():
        raise AdvPurifyError(f"benchmarks/findings.yaml names {source}, which is not committed: fix the path")
    return [r for r in read_rows(path) if r["defense"] == defense and r["classifier"] == classifier]


def readings(root: Path, spec: dict[str, Any], group: str = "datasets") -> dict[str, list[Reading]]:
    """The readings of each dataset (`datasets`), or of each question's table (`tables`: a
    name, its dataset, and its entries)."""
    found: dict[str, list[Reading]] = {}
    learned_clean = spec.get("learned_clean", 0.0)
    fraction = isinstance(learned_clean, (int, float)) and not isinstance(learned_clean, bool)
    if not fraction or not 0 <= learned_clean <= 1:
        raise AdvPurifyError(
            f"benchmarks/findings.yaml has learned_clean: {learned_clean!r}: "
            "give a clean accuracy in [0, 1], e.g. 0.3"
        )
    for name, node in spec.get(group, {}).items():
        data, entries = (name, node) if group == "datasets" else (node["data"], node["entries"])
        for entry in entries:
            classifier = entry["classifier"]
            rows = rows_of(root, entry["source"], entry["rows"], classifier)
            clean_source = entry.get("clean_source", entry["source"])
            clean_classifier = entry.get("clean_classifier", classifier)
            clean_rows = rows_of(root, clean_source, entry["rows"], clean_classifier)
            found.setdefault(name, []).append(
                Reading(
                    data,
                    entry["defense"],
                    entry["reading"],
                    entry["size"],
                    entry["verdict"],
                    rows,
                    entry["source"],
                    clean_rows,
                    clean_source,
                    "classifier" if entry["defense"] == "none" else "pipeline",
                    entry.get("decision", ""),
                    learned_clean,
                )
            )
    return found


def published(claims: dict[str, Any], data: str, defense: str) -> tuple[float | None, str]:
    """Table 5.1's clean accuracy (a fraction) and the claim under attack, as text."""
    clean = claims["clean"].get(data, {}).get(defense)
    claim = claims["attacked"].get(data, {}).get(defense)
    text = ""
    if claim:
        bound = (
            ">= {:g}%".format(claim["at_least"]) if "at_least" in claim else "< {:g}%".format(claim["below"])
        )
        text = f"{bound} ({', '.join(a.upper() for a in claim['attacks'])})"
    return (clean / 100 if clean is not None else None), text


def percent(cell: Cell | None) -> str:
    """An accuracy in %, with +- half its range over seeds where more than one was measured."""
    if cell is None:
        return "-"
    if not cell.learned:
        return "not learned"
    spread = f" ± {100 * cell.spread:.1f}" if cell.seeds > 1 else ""
    return f"{100 * cell.accuracy:.1f}{spread}"


def percents(cells: list[Cell | None]) -> list[str]:
    """The cells of one table row: where some were measured with fewer seeds than the row's label
    counts (a second seed not yet run at every eps), each of those names its own count."""
    most = max((c.seeds for c in cells if c is not None), default=1)
    return [
        percent(c)
        + (f" ({c.seeds} seed{'s' if c.seeds > 1 else ''})" if c and c.learned and c.seeds < most else "")
        for c in cells
    ]


def pair(cells: list[Cell | None]) -> str:
    """Accuracies at the dataset's budgets, `a / b (n=...)`."""
    if all(c is None for c in cells):
        return "not run"
    measured = [c for c in cells if c is not None]
    ns = sorted({c.n for c in measured})
    seeds = max(c.seeds for c in measured)
    note = f"n={'/'.join(str(n) for n in ns)}" + (f", {seeds} seeds" if seeds > 1 else "")
    if not any(c.learned for c in measured):
        clean = max(c.clean for c in measured)
        return f"not learned: clean {100 * clean:.1f} ({note})"
    return f"{' / '.join(percents(cells))} ({note})"


def table(data: str, found: list[Reading], claims: dict[str, Any], spec: dict[str, Any]) -> str:
    eps = spec["eps"][data]
    budgets = " / ".join(f"{e:g}" for e in eps)
    aa_eps = spec["autoattack_eps"][data]
    lines = [
        f"| defense | reading | size | published clean | published under attack | clean, ours | "
        f"PGD {budgets}, dissertation's threat | PGD {budgets}, adaptive | "
        f"AutoAttack {aa_eps:g}, adaptive | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in found:
        clean_pub, claim = published(claims, data, r.defense)
        clean = r.clean()
        oblivious = [r.cell("classifier", "pgd", e) for e in eps]
        adaptive = [r.cell(r.adaptive, "pgd", e) for e in eps]
        aa = r.cell(r.adaptive, "autoattack", aa_eps)
        lines.append(
            f"| {r.defense} | {r.reading} | {r.size} | "
            f"{'-' if clean_pub is None else f'{100 * clean_pub:.2f}'} | {claim or '-'} | "
            f"{'-' if clean is None else pair([clean])} | {pair(oblivious)} | "
            f"{pair(adaptive)} | {pair([aa])} | {r.verdict} |"
        )
    return "\n".join(lines) + "\n"


def grid(found: list[Reading]) -> str:
    """Every attack and threat measured on each reading, accuracy (%) per eps: the whole grid,
    for a question that asks more than PGD (attacks a purifier never trained on)."""
    lines = []
    for r in found:
        cells = sorted({(row["threat"], row["attack"]) for row in r.rows if float(row["eps"]) > 0})
        budgets = sorted({float(row["eps"]) for row in r.rows if float(row["eps"]) > 0})
        clean = r.clean()
        lines += [f"{r.defense}, {r.reading} ({r.size}); clean {'-' if clean is None else pair([clean])}", ""]
        if not cells:  # measured clean only, so far: a table without columns would not render
            continue
        lines += [
            "| threat | attack | n | " + " | ".join(f"eps {e:g}" for e in budgets) + " |",
            "|---|---|---|" + "---|" * len(budgets),
        ]
        for threat, attack in cells:
            row = [r.cell(threat, attack, e) for e in budgets]
            first = next(c for c in row if c is not None)
            seeds = max(c.seeds for c in row if c is not None)
            n = f"{first.n}" + (f", {seeds} seeds" if seeds > 1 else "")
            lines.append(f"| {threat} | {attack} | {n} | " + " | ".join(percents(row)) + " |")
        lines.append("")
    return "\n".join(lines)


def threats_of(rows: list[dict[str, str]]) -> list[str]:
    """The threats findings.csv keeps, each with its variants (`pipeline[eot_samples=1]`), in
    CSV_THREATS' order."""
    kept = {row["threat"] for row in rows if base_name(row["threat"]) in CSV_THREATS}
    return sorted(kept, key=lambda t: (CSV_THREATS.index(base_name(t)), t))


def csv_rows(
    found: dict[str, list[Reading]], claims: dict[str, Any], spec: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for data, entries in found.items():
        for r in entries:
            clean_pub, claim = published(claims, data, r.defense)
            cells = [r.clean()]
            for threat in threats_of(r.rows):
                for attack in sorted({row["attack"] for row in r.rows if row["threat"] == threat}):
                    for eps in sorted({float(row["eps"]) for row in r.rows if row["threat"] == threat}):
                        if eps > 0:
                            cells.append(r.cell(threat, attack, eps))
            for c in cells:
                if c is None or not c.learned:
                    continue
                pub = f"{clean_pub:.4f}" if c.threat == "clean" and clean_pub is not None else ""
                if c.threat != "clean" and claim and c.eps <= spec["claim_max_eps"][data]:
                    pub = claim
                out.append(
                    {
                        "data": data,
                        "defense": r.defense,
                        "reading": r.reading,
                        "size": r.size,
                        "threat": c.threat,
                        "attack": c.attack,
                        "eps": f"{c.eps:g}",
                        "n": c.n,
                        "accuracy": f"{c.accuracy:.4f}",
                        "seeds": c.seeds,
                        "spread": f"{c.spread:.4f}",
                        "published": pub,
                        "source": c.source,
                    }
                )
    return out


def curves(found: list[Reading], data: str, path: Path) -> None:
    """Accuracy against eps under PGD, per defense: oblivious solid, adaptive dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.2))
    # tab20 in pairs of a dark and a light shade: the dark ten first, so readings ten apart share
    # a hue but not a shade; past twenty the marker tells them apart
    tab20 = plt.get_cmap("tab20")
    colours = [tab20(2 * k) for k in range(10)] + [tab20(2 * k + 1) for k in range(10)]
    for i, r in enumerate(found):
        clean = r.clean()
        labelled = False  # a reading whose oblivious cells read "not learned" is named on its dashed line
        threats = [("classifier", "-")] + ([(r.adaptive, "--")] if r.adaptive != "classifier" else [])
        for threat, style in threats:
            eps = sorted(
                {float(x["eps"]) for x in r.rows if x["threat"] == threat and x["attack"] == "pgd"} - {0.0}
            )
            points = [(e, r.cell(threat, "pgd", e)) for e in eps]
            points = [(e, c) for e, c in points if c and c.learned]
            xs = ([0.0] if clean else []) + [e for e, _ in points]
            ys = ([clean.accuracy] if clean else []) + [c.accuracy for _, c in points]
            if len(xs) > 1:
                label = None if labelled else f"{r.defense} ({r.reading})"
                labelled = True
                marker = "os^D"[i // 20 % 4]
                ax.plot(
                    xs, [100 * y for y in ys], style, marker=marker, ms=3, color=colours[i % 20], label=label
                )
    ax.set_xlabel("eps (L-inf, pixels in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{data}: PGD, dissertation's threat (solid) and adaptive threat (dashed)", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})  # the legend sits outside
    plt.close(fig)


def blocks(
    root: Path, found: dict[str, list[Reading]], claims: dict[str, Any], spec: dict[str, Any]
) -> dict[str, str]:
    """The generated text of every `<!-- findings:NAME -->` block, by NAME: one per dataset,
    one per question's table."""
    generated = {data: table(data, entries, claims, spec) for data, entries in found.items()}
    for name, entries in readings(root, spec, "tables").items():
        if spec["tables"][name].get("kind") == "grid":
            generated[name] = grid(entries)
        else:
            generated[name] = table(spec["tables"][name]["data"], entries, claims, spec)
    return generated


def fill(text: str, generated: dict[str, str], where: str) -> str:
    def body(match: re.Match) -> str:
        name = match.group("name")
        if name not in generated:
            raise AdvPurifyError(
                f"{where} has a findings:{name} block that benchmarks/findings.yaml does not define"
            )
        return match.group(1) + generated[name] + match.group(4)

    return MARKER.sub(body, text)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def generate(root: Path, found: dict[str, list[Reading]] | None = None) -> dict[Path, str]:
    """Every text file `make findings` writes, by path, with its content (from `found`, the
    datasets' readings, when they are read already)."""
    spec = read_yaml(root / "benchmarks" / "findings.yaml")
    claims = read_yaml(root / spec["published"])
    found = readings(root, spec) if found is None else found
    generated = blocks(root, found, claims, spec)
    files = {root / "benchmarks" / "findings.csv": csv_text(csv_rows(found, claims, spec))}
    for name in spec["documents"]:
        path = root / name
        files[path] = fill(path.read_text(), generated, name)
    return files


def main(root: Path) -> None:
    found = readings(root, read_yaml(root / "benchmarks" / "findings.yaml"))
    for path, text in generate(root, found).items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    for data, entries in found.items():
        curves(entries, data, root / "docs" / f"findings_{data}.png")


if __name__ == "__main__":
    with user_errors():
        main(Path(__file__).resolve().parents[2])
