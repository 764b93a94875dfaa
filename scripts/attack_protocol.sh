#!/usr/bin/env bash
# The measurement protocol every purifier gets (chapter 5), on Fashion-MNIST padded to 32x32:
# retrain the target on the purifier's outputs, then its clean accuracy and FGSM/BIM/PGD/CW
# over the eps grid, under the `classifier` threat. Usage: scripts/attack_protocol.sh DEFENSE
# Knobs (environment): TARGET_EPOCHS, N (test images for FGSM/BIM), N_PGD, N_CW (ART's CW
# runs ~1 image/s on a 2-core CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
defense=${1:?usage: scripts/attack_protocol.sh DEFENSE}
TARGET_EPOCHS=${TARGET_EPOCHS:-10}
N=${N:-10000}
N_PGD=${N_PGD:-2000}
N_CW=${N_CW:-100}
EPS='eval.eps=[0.05,0.1,0.2,0.3]'
common=(data=fmnist data.image_size=32 logger=csv defense="$defense")

$PY -m src.train "${common[@]}" task=retrain classifier=fmnist_a trainer.max_epochs="$TARGET_EPOCHS"
$PY -m src.eval -m "${common[@]}" retrained=true attack=fgsm,bim eval.n="$N" "$EPS"
$PY -m src.eval "${common[@]}" retrained=true attack=pgd eval.n="$N_PGD" "$EPS"
$PY -m src.eval "${common[@]}" retrained=true attack=cw eval.n="$N_CW" "$EPS"
