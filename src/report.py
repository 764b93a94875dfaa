"""`python -m src.report`: results/results.csv -> accuracy-vs-eps plots and a markdown table.

Reads only the results table (STYLE: report knows nothing else). One figure per
(data, classifier, threat), one panel per attack, one line per defense, starting at eps 0
from the purified clean accuracy, as in the dissertation's figures. When a cell was run
more than once, its latest row wins. A defense's own decisions (voting: vote, bayes) are
lines of their own. Each analysis table beside the results (`eval.analyses`) gets its own
figures, laid out as the analysis declared (`<name>.layout.json`). The published numbers
(conf/published/) head the report in the reproduction tables (src/reproduction.py) and are
drawn as dashed levels in the accuracy figures where a claim covers that defense and attack.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import hydra
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from omegaconf import DictConfig, OmegaConf

from src.reporting.checklist import Check, sanity_checks
from src.reporting.grids import IMAGES, ROWS, grid_path, grid_title
from src.reporting.published import reproduction_tables
from src.reporting.rows import KEY, analysis_tables, decision_names, read_rows
from src.runtime.configs import CONF_DIR, require_readable_conf
from src.runtime.console import console, user_errors
from src.runtime.errors import AdvPurifyError

Curve = dict[float, float]


CURVE = ("data", "defense", "classifier", "threat", "attack", "n")  # what one curve holds fixed


def consistent_cells(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per (results key, n), so no curve mixes what should not be mixed.

    A curve (fixed data, defense, classifier, threat, attack and n) keeps only the cells of
    the models its newest row used (`models`), so a model retrained halfway through a sweep
    never joins the old one's points. A cell run with several seeds becomes the mean of each
    seed's latest row, with `seeds` and `<accuracy>_std` (the spread across seeds).
    """
    by_curve: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_curve[tuple(row.get(k, "") for k in CURVE)].append(row)
    out = []
    for group in by_curve.values():
        models = group[-1].get("models", "")
        cells: dict[float, dict[str, dict[str, str]]] = defaultdict(dict)
        for row in group:
            if row.get("models", "") == models:
                cells[float(row["eps"])][row.get("seed", "")] = row
        for by_seed in cells.values():
            latest = list(by_seed.values())
            merged = dict(latest[-1], seeds=str(len(latest)))
            for column in [c for c in merged if c.endswith("acc") and merged[c] not in ("", None)]:
                values = [float(r[column]) for r in latest if r.get(column) not in ("", None)]
                merged[column] = str(statistics.fmean(values))
                merged[f"{column}_std"] = str(statistics.pstdev(values))
            out.append(merged)
    return out


def curves(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], dict[str, dict[str, Curve]]]:
    """(data, classifier, threat) -> attack -> line -> {eps: adversarial accuracy}.

    A line is a defense, labelled with its n where a figure holds several, and with the
    number of seeds it averages; a voting defense adds one line per decision of its own
    ("<defense> vote", "<defense> bayes") beside the target on its reconstructions.
    """
    cells = consistent_cells(rows)
    sizes: dict[tuple, set[str]] = defaultdict(set)
    for row in cells:
        sizes[row["data"], row["classifier"], row["threat"]].add(row["n"])
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for row in cells:
        figure = row["data"], row["classifier"], row["threat"]
        lines = out[figure][row["attack"]]
        label = row["defense"] + (f" (n={row['n']})" if len(sizes[figure]) > 1 else "")
        label += f" (mean of {row['seeds']} seeds)" if int(row["seeds"]) > 1 else ""
        decisions = [("", "purified_clean_acc", "adv_acc")]
        decisions += [(f" {d}", f"{d}_clean_acc", f"{d}_acc") for d in decision_names(row)]
        for suffix, clean, adversarial in decisions:
            curve = lines[label + suffix]
            curve.setdefault(0.0, float(row[clean]))
            curve[float(row["eps"])] = float(row[adversarial])
    return out


def seed_spread(rows: list[dict[str, str]]) -> list[str]:
    """The cells measured with several seeds: mean and standard deviation of accuracy."""
    several = [r for r in consistent_cells(rows) if int(r["seeds"]) > 1 and float(r["eps"]) > 0]
    if not several:
        return []
    lines = [
        "## Spread across seeds",
        "",
        "| data | defense | classifier | threat | attack | eps | n | seeds | accuracy (%) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(several, key=lambda r: tuple(r[k] for k in (*CURVE, "eps"))):
        spread = f"{100 * float(r['adv_acc']):.2f} ± {100 * float(r['adv_acc_std']):.2f}"
        keys = " | ".join(r[k] for k in ("data", "defense", "classifier", "threat", "attack"))
        lines.append(f"| {keys} | {float(r['eps']):g} | {r['n']} | {r['seeds']} | {spread} |")
    return [*lines, ""]


def fidelity(rows: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """data -> defense -> Table 4.1's clean reconstruction L1 (latest row; older tables lack it)."""
    out: dict = defaultdict(dict)
    for row in rows:
        if row.get("clean_recon_l1_255"):
            out[row["data"]][row["defense"]] = float(row["clean_recon_l1_255"])
    return out


FIGURE_KEY = ("data", "defense", "classifier", "threat", "attack", "eps")  # the order of figure names


def analysis_figures(
    layout: dict[str, Any], rows: list[dict[str, str]]
) -> dict[tuple[str, ...], dict[str, dict[str, Curve]]]:
    """figure (the key columns that are neither axis nor line) -> metric -> line -> {x: value}.

    The layout is the one the analysis declared (`Analysis`); the latest row of a point wins.
    """
    axis, lines = layout["axis"], layout["lines"]
    figure = [k for k in FIGURE_KEY if k != axis and k not in lines]
    latest = {tuple(row[k] for k in (*KEY, *layout["columns"])): row for row in rows}
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for row in latest.values():
        label = layout["line_label"].format(**row)
        out[tuple(row[k] for k in figure)][row["metric"]][label][float(row[axis])] = float(row["value"])
    return out


def analysis_section(
    name: str, layout: dict[str, Any], rows: list[dict[str, str]], out_dir: Path
) -> list[str]:
    """One figure and table per cell of an analysis table."""
    lines = []
    for key, panels in sorted(analysis_figures(layout, rows).items()):
        figure = "_".join((name, *key))
        title = f"{layout['title']}: {' / '.join(key)}"
        plot(title, panels, out_dir / f"{figure}.png", None, xlabel=layout["axis_label"])
        lines += [f"## {title}", "", layout["description"], "", f"![{figure}]({figure}.png)", ""]
        lines += [*table(panels, "metric", clean=False, column=layout["axis_label"]), ""]
    return lines


def plot(
    title: str,
    panels: dict[str, dict[str, Curve]],
    path: Path,
    ylabel: str | None = "accuracy (%)",
    xlabel: str = "eps",
    levels: dict[str, dict[str, float]] | None = None,
) -> None:
    """One panel per key of `panels`; `levels[panel][line]` draws a dashed published level (%)
    in that line's colour."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False, sharey=True)
    for ax, (attack, by_defense) in zip(axes[0], sorted(panels.items()), strict=True):
        for defense, curve in sorted(by_defense.items()):
            eps = sorted(curve)
            scale = 100 if ylabel else 1
            (line,) = ax.plot(eps, [scale * curve[e] for e in eps], marker="o", label=defense)
            if defense in (levels or {}).get(attack, {}):
                level = levels[attack][defense]
                ax.axhline(
                    level,
                    color=line.get_color(),
                    linestyle="--",
                    linewidth=1,
                    label=f"{defense}: published >= {level:g}",
                )
        ax.set_title(attack)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylim(0, 100)
        else:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if ylabel:
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(title="defense")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(
    panels: dict[str, dict[str, Curve]], first: str = "attack", clean: bool = True, column: str = "eps"
) -> list[str]:
    """Rows per (line, panel), a column per x (eps, or voters); accuracies in %, analysis values
    as measured."""
    grid = sorted({e for by_def in panels.values() for c in by_def.values() for e in c if e > 0})
    head = "| defense | attack | clean (purified) | " if clean else f"| series | {first} | "
    lines = [
        head + " | ".join(f"{column} {e:g}" for e in grid) + " |",
        "|" + "---|" * (2 + clean + len(grid)),
    ]
    for panel, by_line in sorted(panels.items()):
        for line, curve in sorted(by_line.items()):
            if clean:
                cells = [f"{100 * curve[e]:.2f}" if e in curve else "" for e in grid]
                lines.append(f"| {line} | {panel} | {100 * curve[0.0]:.2f} | " + " | ".join(cells) + " |")
            else:
                cells = [f"{curve[e]:.4g}" if e in curve else "" for e in grid]
                lines.append(f"| {line} | {panel} | " + " | ".join(cells) + " |")
    return lines


def grid_section(cells: list[dict[str, str]], results_dir: Path, out_dir: Path) -> list[str]:
    """Per curve, the image grid (src/grids.py) of its largest eps that eval wrote."""
    largest: dict[tuple[str, ...], dict[str, str]] = {}
    for row in sorted(cells, key=lambda r: float(r["eps"])):
        if float(row["eps"]) > 0 and grid_path(results_dir, row).exists():
            largest[tuple(row[k] for k in ("data", "defense", "classifier", "attack", "threat"))] = row
    if not largest:
        return []
    lines = [
        "## What the purifiers do to attacked images",
        "",
        f"Rows: {', '.join(ROWS)}, for the first {IMAGES} evaluated test images, at each curve's "
        "largest eps.",
        "",
    ]
    for curve, row in sorted(largest.items()):
        link = os.path.relpath(grid_path(results_dir, row), out_dir)
        lines += [f"**{grid_title(row)}**", "", f"![{' '.join(curve)}]({link})", ""]
    return lines


def sanity_section(checks: list[Check]) -> list[str]:
    """The checklist's failures, announced above everything else, then what is only worth
    knowing; passed checks are counted, not listed (a grid has hundreds)."""
    if not checks:
        return [
            "Sanity checks: none applicable yet. They compare FGSM with BIM/PGD, `pipeline` with "
            "`classifier`, eps >= 0.5 with chance, and runs that differ in iterations.",
            "",
        ]
    failed = [c for c in checks if c.failed]
    noted = [c for c in checks if not c.passed and c.informational]
    passed = len(checks) - len(failed) - len(noted)
    lines = ["## Sanity checks", ""]
    if failed:
        lines += [
            f"> **WARNING: {len(failed)} of {len(checks)} sanity checks FAILED.** The numbers they "
            "involve are probably an attack failure, not robustness (Carlini et al. 2019).",
            "",
        ]
    lines += [f"{passed} of {len(checks)} checks passed.", ""]
    for title, group in (("FAILED", failed), ("Information (oblivious or transfer threat)", noted)):
        if group:
            lines += [f"### {title}", "", "| check | defense | detail |", "|---|---|---|"]
            lines += [
                f"| {c.name} | {c.cell} | {c.detail} |" for c in sorted(group, key=lambda c: (c.name, c.cell))
            ]
            lines.append("")
    return lines


def published_levels(published: dict[str, Any], data: str) -> dict[str, dict[str, float]]:
    """attack -> defense -> the published lowest accuracy (%) for that dataset's at_least claims."""
    out: dict = defaultdict(dict)
    for defense, claim in published["attacked"].get(data, {}).items():
        for attack in claim["attacks"] if "at_least" in claim else []:
            out[attack][defense] = claim["at_least"]
    return out


def report(results_file: str | Path, out_dir: str | Path, published: dict[str, Any] | None = None) -> Path:
    """REPORT.md and its figures, with every analysis table found beside the results table;
    `published` (conf/published/) adds the reproduction tables."""
    rows = read_rows(results_file)
    if not rows:
        raise AdvPurifyError(f"no results in {results_file}: run `python -m src.eval` first")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Results",
        "",
        f"From `{results_file}`: accuracy (%) of the defended model on adversarial inputs.",
        "",
    ]
    lines += sanity_section(sanity_checks(consistent_cells(rows)))
    if published:
        lines += reproduction_tables(consistent_cells(rows), published)
    for (data, classifier, threat), panels in sorted(curves(rows).items()):
        name = f"{data}_{classifier}_{threat}"
        levels = published_levels(published, data) if published else None
        plot(f"{data} / {classifier} / threat={threat}", panels, out_dir / f"{name}.png", levels=levels)
        lines += [
            f"## {data}, classifier {classifier}, threat `{threat}`",
            "",
            f"![{name}]({name}.png)",
            "",
        ]
        lines += [*table(panels), ""]
    lines += seed_spread(rows)
    for data, by_defense in sorted(fidelity(rows).items()):
        lines += [
            f"## Reconstruction fidelity, {data} (Table 4.1)",
            "",
            "Mean per-image sum of |x - X_C| over the evaluated clean test images, 0-255 scale.",
            "",
            "| defense | L1 |",
            "|---|---|",
            *(f"| {d} | {v:.1f} |" for d, v in sorted(by_defense.items(), key=lambda kv: kv[1])),
            "",
        ]
    for name, (layout, analysis_rows) in analysis_tables(Path(results_file).parent).items():
        lines += analysis_section(name, layout, analysis_rows, out_dir)
    lines += grid_section(consistent_cells(rows), Path(results_file).parent, out_dir)
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="report")
def main(cfg: DictConfig) -> None:
    with user_errors():
        paths = cfg.paths
        published = OmegaConf.to_container(cfg.published, resolve=True)
        path = report(paths.results_file, paths.report_dir, published=published)
    console.print(f"[bold green]report[/] {path}")


if __name__ == "__main__":
    # Run the importable src.report.main, not this __main__ copy: parallel launchers (joblib,
    # submitit) pickle the task function, and a function from __main__ would be pickled by
    # value with everything it references (the console's lock cannot be).
    from src.report import main as importable_main

    with user_errors():
        require_readable_conf()
    importable_main()
