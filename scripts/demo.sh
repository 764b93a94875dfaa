#!/usr/bin/env bash
# The main job (`make demo`), sized for a 2-core CPU: train the fmnist_a target on the full
# Fashion-MNIST (padded to 32x32), train a small VQUNet (width 16, one epoch on 30,000 images; the full-size
# config is the default for real runs), evaluate FGSM and PGD over an eps grid on 1,000 test
# images with and without the purifier, then the honest number beside it: PGD through the
# purifier itself (`threat=pipeline`, BPDA through the VQ argmin) at eps 0.1 on 100 images (the
# demo's 15-minute budget allows one eps); and write the
# results table and plots.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m src.train experiment=demo
# The purifier learns from attacked inputs (the default reading, docs/decisions.md); the demo crafts
# them with FGSM (one PGD step of eps from no random start), not the default PGD-10, to keep its time.
echo "demo: VQUNet trains on FGSM-crafted inputs (the default crafts them with PGD-10)"
$PY -m src.train experiment=demo defense=vqunet defense.width=16 defense.lr=0.001 trainer.max_epochs=1 \
  data.module.train_limit=30000 defense.attacks.pgd.max_iter=1 defense.attacks.pgd.rel_step=1.0 \
  defense.attacks.pgd.num_random_init=0
$PY -m src.eval -m experiment=demo defense=none,vqunet attack=fgsm,pgd
$PY -m src.eval experiment=demo defense=vqunet threat=pipeline attack=pgd eval.n=100 'eval.eps=[0.1]'
$PY -m src.report
echo "demo done: results/results.csv, results/REPORT.md, results/*.png"
