#!/usr/bin/env bash
# Points along a plateau run's curve: the models scripts/plateau.sh kept after POINTS epochs (its
# snapshots) attacked with PGD under the dissertation's (classifier) threat and the adaptive
# (pipeline) one, so a reader sees where robustness stood as val/recon fell, not only at the end.
# Each point's rows go to $RESULTS/e<k>/ (the layout benchmarks/budget_curve.py tabulates and
# plots); a rerun skips finished cells. Knobs (environment): DATA, DEFENSE, NAME, SEED and EXTRA
# as for scripts/plateau.sh, and its EPS (the data's three budgets); POINTS (epoch counts,
# 1-based), N, N_PIPE, RESULTS.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-fmnist}
DEFENSE=${DEFENSE:-vqunet}
NAME=${NAME:-${DEFENSE}_plateau}
SEED=${SEED:-0}
POINTS=${POINTS:-1 2 4 8}
RESULTS=${RESULTS:-results/plateau_points/$DATA}
suffix=$([ "$SEED" = 0 ] && echo "" || echo "-seed$SEED")
snapshots=checkpoints/snapshots/$DATA/$NAME$suffix
for k in $POINTS; do
  snapshot=$snapshots/epoch$(printf %03d $((k - 1))).ckpt
  if [ ! -f "$snapshot" ]; then
    echo "$snapshot is missing: train $NAME with scripts/plateau.sh first, or drop $k from POINTS" >&2
    exit 2
  fi
  DATA=$DATA DEFENSE=$DEFENSE NAME=$NAME SEED=$SEED CKPT=$snapshot RESULTS=$RESULTS/e$k \
    CELLS="classifier pipeline" ATTACKS=pgd N=${N:-1000} N_PIPE=${N_PIPE:-200} scripts/plateau.sh
done
