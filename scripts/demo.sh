#!/usr/bin/env bash
# The main job (`make demo`): train the fmnist_a target on the full Fashion-MNIST, evaluate
# FGSM and PGD over an eps grid on 1,000 test images, write the results table and plots.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m src.train experiment=demo
$PY -m src.eval -m experiment=demo attack=fgsm,pgd
$PY -m src.report
echo "demo done: results/results.csv, results/REPORT.md, results/*.png"
