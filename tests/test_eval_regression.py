"""Nothing lost in a refactor: the small grid of tests/grid_regression.py writes the same rows
and analysis rows as the evaluator did before it was split (tests/golden/).

Measured on the machine that wrote them: every cell equal, but PGD's (8 of 36 rows, 47 of 156
analysis rows), whose random start is drawn from each cell's own seed since issue 14."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from src.results import TEXT_COLUMNS, read_rows
from tests.grid_regression import VOLATILE, run_grid

GOLDEN = Path(__file__).parent / "golden"


def same_number(ours: str, golden: str, column: str) -> bool:
    """Equal on the machine that wrote the golden rows; a CPU with other float kernels trains a
    slightly different session model, so accuracies may move by a few of the 64 images."""
    a, b = float(ours), float(golden)
    if column.endswith("acc"):
        return abs(a - b) <= 0.1
    return math.isclose(a, b, rel_tol=0.15, abs_tol=1e-3)


@pytest.mark.parametrize("table", ["results.csv", "vq_analysis.csv"])
def test_split_evaluator_writes_what_the_old_one_wrote(trained32, tmp_path_factory, table):
    tmp = tmp_path_factory.getbasetemp() / "grid_regression"
    if not (tmp / "results" / "results.csv").exists():
        run_grid(trained32["ckpt"], tmp)
    ours, golden = read_rows(tmp / "results" / table), read_rows(GOLDEN / table)
    assert len(ours) == len(golden)
    assert [c for c in ours[0] if c in golden[0]] == list(golden[0])  # every column, in order
    far = []
    for row, old in zip(ours, golden, strict=True):
        for column, value in old.items():
            if column in VOLATILE:
                continue
            if column in TEXT_COLUMNS or column in ("eps", "n", "iterations", "seed", "metric", "depth"):
                assert row[column] == value, (column, row, old)
            elif not same_number(row[column], value, column):
                far.append((column, row[column], value))
    assert len(far) <= len(golden) // 20, far  # a few cells on another CPU, none on this one
