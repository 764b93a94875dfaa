#!/usr/bin/env bash
# The threat-model runs on Fashion-MNIST 32x32: the target alone (defense=none) and VQUNet
# with its retrained target, under FGSM, BIM, PGD and CW-L-inf over an eps grid, in each threat
# model: `classifier` (the source's), `pipeline` (VQUNet end to end, BPDA through the VQ argmin)
# and `transfer` (crafted on surrogates); then `src.report` for the side-by-side tables.
# Needs checkpoints/fmnist/32px/{fmnist_a,vqunet,fmnist_a+vqunet}.ckpt (scripts/vqunet_fmnist.sh);
# trains the surrogates when missing.
# Knobs (environment): N (test images, default 10000), EPS (default [0.05,0.1,0.2,0.3]),
# SURROGATES (default the three DenseNets of threat=transfer), SURROGATE_EPOCHS, EXTRA
# (overrides for every run, e.g. "trainer=gpu"), RESULTS (the results table), PY.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-10000}
EPS=${EPS:-[0.05,0.1,0.2,0.3]}
SURROGATES=${SURROGATES:-densenet50_12,densenet50_24,densenet100_12}
RESULTS=${RESULTS:-results/results.csv}
read -r -a extra <<<"${EXTRA:-}"
common=(data=fmnist data.image_size=32 logger=csv paths.results_file="$RESULTS" "${extra[@]}")
for surrogate in ${SURROGATES//,/ }; do
  if [[ ! -f checkpoints/fmnist/32px/$surrogate.ckpt ]]; then
    $PY -m src.train "${common[@]}" classifier="$surrogate" trainer.max_epochs="${SURROGATE_EPOCHS:-5}"
  fi
done
grid=(attack=fgsm,bim,pgd,cw "eval.eps=$EPS" eval.n="$N")
transfer=(threat=transfer "threat.surrogates=[$SURROGATES]")
$PY -m src.eval -m "${common[@]}" "${grid[@]}" defense=none
$PY -m src.eval -m "${common[@]}" "${grid[@]}" defense=none "${transfer[@]}"
for threat in classifier pipeline; do
  $PY -m src.eval -m "${common[@]}" "${grid[@]}" defense=vqunet retrained=true threat="$threat"
done
$PY -m src.eval -m "${common[@]}" "${grid[@]}" defense=vqunet retrained=true "${transfer[@]}"
$PY -m src.report paths.results_file="$RESULTS" paths.report_dir="$(dirname "$RESULTS")"
