#!/usr/bin/env bash
# Grid timing: the full Fashion-MNIST grid (4 attacks x 8 eps x N test images,
# `classifier` threat, one defense) as one Hydra multirun, timed end to end, after training the
# target and the defense when their checkpoints are missing (the defense's quality does not
# change the attacks' cost). The target on a GPU is under 10 minutes.
# Knobs (environment): N (test images, default 10000), DEFENSE (default vqunet), BACKEND
# (native | art), ATTACK_BATCH (images per attack batch; default the attack config's), TARGET_EPOCHS, DEFENSE_EPOCHS, EXTRA (overrides for every run, e.g.
# "trainer=gpu paths.data_dir=.gpu/data"), PY.
# Prints the wall time of the eval multirun and writes its rows to results/grid_timing.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-10000}
DEFENSE=${DEFENSE:-vqunet}
read -r -a extra <<<"${EXTRA:-}"
common=(data=fmnist data.image_size=32 logger=csv "${extra[@]}")
EPS='[0.025,0.05,0.075,0.1,0.15,0.2,0.25,0.3]'
if [[ ! -f checkpoints/fmnist/32px/fmnist_a.ckpt ]]; then
  $PY -m src.train "${common[@]}" classifier=fmnist_a trainer.max_epochs="${TARGET_EPOCHS:-5}"
fi
if [[ ! -f checkpoints/fmnist/32px/$DEFENSE.ckpt ]]; then
  $PY -m src.train "${common[@]}" defense="$DEFENSE" trainer.max_epochs="${DEFENSE_EPOCHS:-1}"
fi
start=$(date +%s.%N)
$PY -m src.eval -m "${common[@]}" defense="$DEFENSE" attack=fgsm,bim,pgd,cw \
  attack.backend="${BACKEND:-native}" ${ATTACK_BATCH:+attack.batch_size=$ATTACK_BATCH} "eval.eps=$EPS" eval.n="$N" eval.recompute=true \
  paths.results_file=results/grid_timing.csv
end=$(date +%s.%N)
echo "grid: 4 attacks x 8 eps x $N images, defense=$DEFENSE, backend=${BACKEND:-native}:" \
  "$(echo "$end - $start" | bc) s wall"
