#!/usr/bin/env bash
# The budget curve: does robustness rise or fall as a purifier's fidelity rises? Each
# purifier is trained once for max(POINTS) epochs on clean or on attacked inputs
# (`defense.train_inputs`), keeping every epoch's model (callbacks=snapshots); the models after
# POINTS epochs are then attacked with PGD under the classifier-only and the adaptive threat.
# Each point's rows go to $RESULTS/e<k>/ (one model name, one results table per point); a rerun
# skips trained models and finished cells. Knobs (environment): DEFENSES, MODES, POINTS,
# TRAIN_LIMIT, HELD_OUT (validation and test images of each training: attacked inputs cost
# a PGD per batch), N, N_PIPE, EPS, RESULTS. benchmarks/budget_curve.py tabulates and plots them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEFENSES=${DEFENSES:-"vqunet cyclegan cyclegan_domains"}
MODES=${MODES:-"clean adversarial"}
POINTS=${POINTS:-"1 2 4 8"}
TRAIN_LIMIT=${TRAIN_LIMIT:-10000}
HELD_OUT=${HELD_OUT:-1000}
N=${N:-1000}
N_PIPE=${N_PIPE:-200}
EPS=${EPS:-"[0.1]"}
RESULTS=${RESULTS:-results/budget_curve}
EPOCHS=$(tr ' ' '\n' <<<"$POINTS" | sort -n | tail -1)
common=(data=fmnist data.image_size=32 classifier=fmnist_a logger=csv)

source scripts/cpu_sizes.sh

[ -f checkpoints/fmnist/32px/fmnist_a.ckpt ] || $PY -m src.train experiment=demo
for defense in $DEFENSES; do
  for mode in $MODES; do
    [[ $defense == cyclegan_domains && $mode == clean ]] && continue
    name=${defense}_${mode}_curve
    snapshots=checkpoints/snapshots/fmnist/$name
    model=("${common[@]}" "defense=$defense" "defense.name=$name" $(cpu_size "$defense"))
    [ -f "checkpoints/fmnist/32px/$name.ckpt" ] || $PY -m src.train "${model[@]}" "defense.train_inputs=$mode" \
      "trainer.max_epochs=$EPOCHS" "data.module.train_limit=$TRAIN_LIMIT" "data.module.val_limit=$HELD_OUT" \
      "data.module.test_limit=$HELD_OUT" callbacks=snapshots "callbacks.snapshots.dirpath=$snapshots"
    for k in $POINTS; do
      at=("defense_ckpt=$snapshots/epoch$(printf %03d $((k - 1))).ckpt" "paths.results_dir=$RESULTS/e$k")
      $PY -m src.eval "${model[@]}" "${at[@]}" attack=pgd threat=classifier "eval.n=$N" "eval.eps=$EPS"
      $PY -m src.eval "${model[@]}" "${at[@]}" attack=pgd threat=pipeline "eval.n=$N_PIPE" "eval.eps=$EPS"
    done
  done
done
