#!/usr/bin/env bash
# Issue 3's measurement on Fashion-MNIST, following chapter 5's protocol: train the target on
# padded 32x32 images, train VQUNet, retrain the target on VQUNet outputs, then evaluate
# clean accuracy on the full test set and FGSM/BIM/PGD/CW over the eps grid.
# Knobs (environment): VQ (VQUNet overrides; empty = the full-size config), VQ_EPOCHS,
# TARGET_EPOCHS, N (test images for FGSM/BIM), N_PGD, N_CW (ART's CW runs ~1 image/s on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VQ=${VQ-"defense.width=32 defense.lr=0.001"}
VQ_EPOCHS=${VQ_EPOCHS:-3}
TARGET_EPOCHS=${TARGET_EPOCHS:-10}
N=${N:-10000}
N_PGD=${N_PGD:-2000}
N_CW=${N_CW:-100}
EPS='eval.eps=[0.05,0.1,0.2,0.3]'
common=(data=fmnist data.image_size=32 logger=csv)

$PY -m src.train "${common[@]}" classifier=fmnist_a trainer.max_epochs="$TARGET_EPOCHS"
$PY -m src.train "${common[@]}" defense=vqunet $VQ trainer.max_epochs="$VQ_EPOCHS"
$PY -m src.train "${common[@]}" task=retrain defense=vqunet classifier=fmnist_a trainer.max_epochs="$TARGET_EPOCHS"
$PY -m src.eval "${common[@]}" defense=none attack=fgsm eval.n="$N" "$EPS"
$PY -m src.eval -m "${common[@]}" defense=vqunet retrained=true attack=fgsm,bim eval.n="$N" "$EPS"
$PY -m src.eval "${common[@]}" defense=vqunet retrained=true attack=pgd eval.n="$N_PGD" "$EPS"
$PY -m src.eval "${common[@]}" defense=vqunet retrained=true attack=cw eval.n="$N_CW" "$EPS"
$PY -m src.report
