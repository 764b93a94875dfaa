"""benchmarks/budget_curve.py: the points of a curve, read from per-epoch results tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt

from src.reporting.rows import append_rows, read_rows

ROOT = Path(__file__).resolve().parents[1]


def load_budget_curve():
    spec = importlib.util.spec_from_file_location("budget_curve", ROOT / "benchmarks" / "budget_curve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_eps_is_its_own_line_and_rows_sort_by_epoch_within_it(tmp_path):
    measured = [
        r
        for r in read_rows(ROOT / "benchmarks" / "fmnist" / "plateau" / "results.csv")
        if r["defense"] == "vqunet_plateau" and r["attack"] == "pgd" and r["threat"] == "classifier"
    ]
    measured = [r for r in measured if float(r["eps"]) in (0.1, 0.3) and int(r["seed"]) == 0]
    assert len(measured) == 2
    for epochs, accuracy in ((8, "0.5"), (1, "0.2")):  # written out of order on purpose
        (tmp_path / f"e{epochs}").mkdir()
        append_rows(tmp_path / f"e{epochs}" / "results.csv", [{**r, "adv_acc": accuracy} for r in measured])

    budget_curve = load_budget_curve()
    rows = budget_curve.points(tmp_path)
    assert [(r["eps"], r["epochs"], r["adv_acc"]) for r in rows] == [
        (0.1, 1, 0.2),
        (0.1, 8, 0.5),
        (0.3, 1, 0.2),
        (0.3, 8, 0.5),
    ]
    budget_curve.figure(rows, tmp_path / "curve.png")
    (ax,) = plt.gcf().axes
    assert sorted(line.get_label() for line in ax.lines) == [
        "vqunet_plateau, eps 0.1",
        "vqunet_plateau, eps 0.3",
    ]
    assert (tmp_path / "curve.png").stat().st_size > 0
    plt.close("all")


def test_a_colour_image_reconstruction_error_is_per_channel_value(tmp_path):
    """CIFAR-10's error sums three channels per pixel; read as one it would look three times worse."""
    measured = read_rows(ROOT / "benchmarks" / "cifar10" / "vqunet_budget" / "e4.csv")
    (tmp_path / "e4").mkdir()
    append_rows(tmp_path / "e4" / "results.csv", measured)
    points = load_budget_curve().points(tmp_path)
    for point, row in zip(points, sorted(measured, key=lambda r: r["threat"]), strict=True):
        assert point["recon_l1"] == float(row["clean_recon_l1_255"]) / (3 * 32 * 32) / 255
    assert 0.05 < points[0]["recon_l1"] < 0.1
