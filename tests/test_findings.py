"""The findings a reader sees are what the committed rows give (src/reporting/findings.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from src.reporting import findings
from src.runtime.errors import AdvPurifyError
from src.runtime.yamlfiles import read_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_generated_file_is_what_the_rows_give():
    """`make findings` on this checkout would change nothing: README, RESULTS and findings.csv."""
    for path, text in findings.generate(ROOT).items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} drifted from its rows: run make findings"


def test_the_readme_opens_with_a_findings_table_per_dataset():
    readme = (ROOT / "README.md").read_text()
    for data in ("fmnist", "cifar10"):
        assert f"<!-- findings:{data} -->" in readme
    assert readme.index("<!-- findings:fmnist -->") < readme.index("## ", readme.index("## Findings") + 1)


def test_a_findings_number_is_the_row_it_names():
    rows = list(csv.DictReader((ROOT / "benchmarks" / "findings.csv").open()))
    assert {r["data"] for r in rows} == {"fmnist", "cifar10"}
    for row in rows[:: max(1, len(rows) // 40)]:
        source = list(csv.DictReader((ROOT / row["source"]).open()))
        if row["threat"] == "clean":
            values = {
                float(r[c])
                for r in source
                if int(r["n"]) == int(row["n"])
                for c in ("purified_clean_acc", "bayes_clean_acc")
                if r.get(c)
            }
        else:
            values = {
                float(r[c])
                for r in source
                for c in ("adv_acc", "bayes_acc")
                if r.get(c)
                and r["threat"] == row["threat"]
                and r["attack"] == row["attack"]
                and abs(float(r["eps"]) - float(row["eps"])) < 1e-9
            }
        assert values, row
        assert min(values) - 1e-4 <= float(row["accuracy"]) <= max(values) + 1e-4, row


def test_a_changed_row_changes_the_table(tmp_path):
    spec = read_yaml(ROOT / "benchmarks" / "findings.yaml")
    entry = spec["datasets"]["fmnist"][0]
    source = ROOT / entry["source"]
    copy = tmp_path / entry["source"]
    copy.parent.mkdir(parents=True)
    lines = source.read_text().splitlines()
    header = lines[0].split(",")
    at = header.index("adv_acc")
    changed = []
    for line in lines[1:]:
        cells = line.split(",")
        if cells[header.index("attack")] == "pgd" and cells[header.index("eps")] == "0.1":
            cells[at] = "0.5"
        changed.append(",".join(cells))
    copy.write_text("\n".join([lines[0], *changed]) + "\n")
    reading = findings.readings(tmp_path, {"datasets": {"fmnist": [entry]}})["fmnist"][0]
    assert reading.cell("classifier", "pgd", 0.1).accuracy == 0.5


def test_a_block_the_spec_does_not_define_is_refused():
    with pytest.raises(AdvPurifyError, match="findings:nowhere"):
        findings.fill("<!-- findings:nowhere -->\nx\n<!-- /findings:nowhere -->", {}, "README.md")


def test_a_spec_that_is_not_yaml_is_refused_with_its_line(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "findings.yaml").write_text("published: x\nverdict: no: colon here\n")
    with pytest.raises(AdvPurifyError, match=r"findings\.yaml line 2 is not valid YAML .*fix that file"):
        findings.generate(tmp_path)


def one_reading(tmp_path: Path, rows: list[str], **spec) -> findings.Reading:
    """The reading of defense `d` on target `t` that these CSV rows (without header) give."""
    header = "data,defense,classifier,attack,threat,eps,n,purified_clean_acc,adv_acc,seed"
    (tmp_path / "rows.csv").write_text("\n".join([header, *rows]) + "\n")
    entry = {"defense": "d", "reading": "r", "size": "s", "verdict": "", "source": "rows.csv", "rows": "d"}
    (reading,) = findings.readings(
        tmp_path, {**spec, "datasets": {"fmnist": [{**entry, "classifier": "t"}]}}
    )["fmnist"]
    return reading


def test_two_seeds_show_their_mean_and_half_their_range(tmp_path):
    """A cell measured twice is the mean of each seed's latest row, ± half the range they span."""
    rows = [
        "fmnist,d,t,pgd,classifier,0.1,100,0.9,0.20,0",
        "fmnist,d,t,pgd,classifier,0.1,100,0.9,0.50,0",  # seed 0 measured again: this row wins
        "fmnist,d,t,pgd,classifier,0.1,100,0.8,0.70,1",
    ]
    reading = one_reading(tmp_path, rows)
    cell = reading.cell("classifier", "pgd", 0.1)
    assert (cell.seeds, cell.accuracy, cell.spread) == (2, pytest.approx(0.6), pytest.approx(0.1))
    assert findings.pair([cell]) == "60.0 ± 10.0 (n=100, 2 seeds)"
    assert findings.percent(reading.cell("classifier", "pgd", 0.1)) == "60.0 ± 10.0"


def test_a_budget_measured_with_fewer_seeds_than_its_row_says_so(tmp_path):
    """A second seed run at one eps only: the row counts 2 seeds, the other cell names its 1."""
    rows = [
        "fmnist,d,t,pgd,pipeline,0.1,100,0.9,0.30,0",
        "fmnist,d,t,pgd,pipeline,0.1,100,0.9,0.40,1",
        "fmnist,d,t,pgd,pipeline,0.3,100,0.9,0.05,0",
    ]
    reading = one_reading(tmp_path, rows)
    cells = [reading.cell("pipeline", "pgd", e) for e in (0.1, 0.3)]
    assert findings.pair(cells) == "35.0 ± 5.0 / 5.0 (1 seed) (n=100, 2 seeds)"
    assert "| pipeline | pgd | 100, 2 seeds | 35.0 ± 5.0 | 5.0 (1 seed) |" in findings.grid([reading])


def test_a_cell_whose_models_have_not_learned_shows_its_clean_accuracy_instead(tmp_path):
    """Below `learned_clean` on the same images, an attacked number says nothing: the table
    names the clean accuracy instead, and findings.csv leaves the cell out."""
    rows = [
        "fmnist,d,t,fgsm,classifier,0.0,1000,0.50,0.50,0",
        "fmnist,d,t,pgd,classifier,0.1,100,0.12,0.11,0",
        "fmnist,d,t,pgd,pipeline,0.1,100,0.40,0.20,0",
    ]
    reading = one_reading(tmp_path, rows, learned_clean=0.3)
    oblivious, adaptive = reading.cell("classifier", "pgd", 0.1), reading.cell("pipeline", "pgd", 0.1)
    assert findings.pair([oblivious]) == "not learned: clean 12.0 (n=100)"
    assert findings.pair([adaptive]) == "20.0 (n=100)"
    assert findings.percent(oblivious) == "not learned"
    claims = {"clean": {}, "attacked": {}}
    kept = findings.csv_rows({"fmnist": [reading]}, claims, {"claim_max_eps": {"fmnist": 0.3}})
    assert [(r["threat"], r["accuracy"]) for r in kept] == [("clean", "0.5000"), ("pipeline", "0.2000")]


def test_a_reading_learned_only_under_the_adaptive_threat_is_named_in_the_figure(tmp_path, monkeypatch):
    """Its oblivious cells read "not learned", so its one line is the dashed one: the legend names it."""
    import matplotlib.figure

    rows = [
        "fmnist,d,t,fgsm,classifier,0.0,1000,0.50,0.50,0",
        "fmnist,d,t,pgd,classifier,0.1,100,0.12,0.11,0",
        "fmnist,d,t,pgd,pipeline,0.1,100,0.40,0.20,0",
    ]
    reading = one_reading(tmp_path, rows, learned_clean=0.3)
    named: list[str] = []

    def keep_legend(fig, *args, **kwargs) -> None:
        named.extend(t.get_text() for t in fig.axes[0].get_legend().get_texts())

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep_legend)
    findings.curves([reading], "fmnist", tmp_path / "curves.png")
    assert named == ["d (r)"]


def test_a_reading_measured_clean_only_shows_no_empty_table(tmp_path):
    """A grid reading with its clean row alone is one line, not a table without columns."""
    reading = one_reading(tmp_path, ["fmnist,d,t,fgsm,classifier,0.0,1000,0.50,0.50,0"])
    assert findings.grid([reading]).strip() == "d, r (s); clean 50.0 (n=1000)"


@pytest.mark.parametrize("value", ["thirty", 30, True])
def test_a_learned_clean_that_is_not_a_fraction_is_refused(tmp_path, value):
    with pytest.raises(AdvPurifyError, match=r"learned_clean.*in \[0, 1\]"):
        findings.readings(tmp_path, {"learned_clean": value, "datasets": {}})
