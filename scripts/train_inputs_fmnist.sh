#!/usr/bin/env bash
# The training reading at CPU size: each purifier trained on clean and on attacked inputs
# (`defense.train_inputs`), then attacked under the classifier-only and the adaptive threat.
# Every model gets a name of its own (<defense>_<mode><SUFFIX>), so none replaces another; a rerun
# skips models already published and cells already in the results table. SUFFIX=_curve
# evaluates the models scripts/budget_curve_fmnist.sh trained.
# Knobs (environment): DEFENSES, MODES, SUFFIX, EPOCHS, TRAIN_LIMIT, N_CLEAN (the clean row),
# N (classifier threat), N_PIPE (pipeline threat), ATTACKS, EPS, RESULTS, EXTRA (overrides of
# every model, e.g. SUFFIX=_kl0.01 EXTRA=defense.kl_weight=0.01 for a VAE setting). cyclegan_domains
# (CycleGAN's attacked-to-clean reading) learns from attacked inputs by definition, so it has no
# clean mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEFENSES=${DEFENSES:-"vqunet cyclegan cyclegan_domains sfl_vae"}
MODES=${MODES:-"clean adversarial"}
SUFFIX=${SUFFIX:-}
EPOCHS=${EPOCHS:-1}
TRAIN_LIMIT=${TRAIN_LIMIT:-30000}
N_CLEAN=${N_CLEAN:-10000}
N=${N:-1000}
N_PIPE=${N_PIPE:-200}
ATTACKS=${ATTACKS:-fgsm,pgd,cw}
EPS=${EPS:-"[0.05,0.1,0.2,0.3]"}
RESULTS=${RESULTS:-results/train_inputs}
read -r -a extra <<<"${EXTRA:-}"
common=(data=fmnist data.image_size=32 classifier=fmnist_a logger=csv)

source scripts/cpu_sizes.sh

[ -f checkpoints/fmnist/32px/fmnist_a.ckpt ] || $PY -m src.train experiment=demo
for defense in $DEFENSES; do
  for mode in $MODES; do
    [[ $defense == cyclegan_domains && $mode == clean ]] && continue
    name=${defense}_${mode}${SUFFIX}
    model=("${common[@]}" "defense=$defense" "defense.name=$name" $(cpu_size "$defense") "${extra[@]}")
    [ -f "checkpoints/fmnist/32px/$name.ckpt" ] || $PY -m src.train "${model[@]}" \
      "defense.train_inputs=$mode" "trainer.max_epochs=$EPOCHS" "data.module.train_limit=$TRAIN_LIMIT"
    $PY -m src.eval "${model[@]}" attack=fgsm threat=classifier "eval.n=$N_CLEAN" "eval.eps=[0]" \
      "paths.results_dir=$RESULTS"
    $PY -m src.eval -m "${model[@]}" "attack=$ATTACKS" threat=classifier "eval.n=$N" "eval.eps=$EPS" \
      "paths.results_dir=$RESULTS"
    $PY -m src.eval -m "${model[@]}" "attack=$ATTACKS" threat=pipeline "eval.n=$N_PIPE" "eval.eps=$EPS" \
      "paths.results_dir=$RESULTS"
  done
done
$PY -m src.report "paths.results_dir=$RESULTS" "paths.report_dir=$RESULTS"
