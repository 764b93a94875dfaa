#!/usr/bin/env bash
# VQUNet's measurement on Fashion-MNIST padded to 32x32, following chapter 5: train the
# target, the undefended baseline, train VQUNet, then the attack protocol (retrain, attack).
# Knobs (environment): VQ (VQUNet overrides; empty = the full-size config), VQ_EPOCHS,
# TARGET_EPOCHS, N, and those of scripts/attack_protocol.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VQ=${VQ-"defense.width=32 defense.lr=0.001"}
common=(data=fmnist data.image_size=32 logger=csv)

$PY -m src.train "${common[@]}" classifier=fmnist_a trainer.max_epochs="${TARGET_EPOCHS:-10}"
$PY -m src.eval "${common[@]}" defense=none attack=fgsm eval.n="${N:-10000}" 'eval.eps=[0.05,0.1,0.2,0.3]'
$PY -m src.train "${common[@]}" defense=vqunet $VQ trainer.max_epochs="${VQ_EPOCHS:-3}"
scripts/attack_protocol.sh vqunet
$PY -m src.report
