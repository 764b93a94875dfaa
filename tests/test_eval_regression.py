"""Nothing lost in a change to the evaluator: the small grid of tests/grid_regression.py writes
the rows and analysis rows of tests/golden/.

The models it attacks are the same on every x86 CPU, so what is left to differ is float32
evaluation's last bits: at most 0.2% in a cell between AVX-512 and AVX2 kernels."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from src.reporting.rows import TEXT_COLUMNS, read_rows
from tests.grid_regression import VOLATILE, run_grid

GOLDEN = Path(__file__).parent / "golden"


def same_number(ours: str, golden: str, column: str) -> bool:
    """Within ten times the spread measured across CPU kernels, and one of the 64 images."""
    a, b = float(ours), float(golden)
    if column.endswith("acc"):
        return abs(a - b) <= 1 / 64 + 1e-9
    return math.isclose(a, b, rel_tol=0.02, abs_tol=1e-6)


@pytest.mark.parametrize("table", ["results.csv", "vq_analysis.csv"])
def test_the_grid_writes_the_golden_rows(trained32, tmp_path_factory, table):
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
    assert not far, far
