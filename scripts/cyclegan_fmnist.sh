#!/usr/bin/env bash
# CycleGAN's measurement on Fashion-MNIST padded to 32x32 (chapter 5's setting, so the target is
# VQUNet's fmnist_a: run scripts/vqunet_fmnist.sh first, or TRAIN_TARGET=1): train
# Defense-CycleGAN and its ablations Cyc_1..Cyc_4, Table 4.1's reconstruction L1 on the full
# test set, then the attack protocol (retrain, attack).
# Knobs (environment): CG (CycleGAN overrides; empty = the full-size config), CG_EPOCHS,
# TRAIN_TARGET, TARGET_EPOCHS, N, and those of scripts/attack_protocol.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CG=${CG-"defense.width=16 defense.disc_width=16"}
common=(data=fmnist data.image_size=32 logger=csv)
ablations=cyclegan,cyclegan_skip1,cyclegan_skip2,cyclegan_skip3,cyclegan_skip4

if [ "${TRAIN_TARGET:-0}" = 1 ]; then
  $PY -m src.train "${common[@]}" classifier=fmnist_a trainer.max_epochs="${TARGET_EPOCHS:-10}"
fi
# One run each, not a multirun: Hydra composes a multirun's base config with the default
# defense (none), which has no `width` to override.
for defense in ${ablations//,/ }; do
  $PY -m src.train "${common[@]}" defense="$defense" $CG trainer.max_epochs="${CG_EPOCHS:-2}"
done
$PY -m src.eval -m "${common[@]}" defense="$ablations" eval.n="${N:-10000}" 'eval.eps=[0]'
scripts/attack_protocol.sh cyclegan
$PY -m src.report
