#!/usr/bin/env bash
# One SFL-VAE setting trained longer, retrained target and voting (benchmarks/vae_sweep.py picks it):
# the setting trained longer under a name of its own (sfl_vae_<LABEL>), the target retrained on
# its outputs, and clean accuracy on the whole test set with and without that retraining; then
# voters retrained on its outputs with chapter 4's augmentation, the Bayesian tables, and the
# vote and the Bayesian update beside each voter (eval.analyses=[vote_analysis]) and their mean,
# clean and under FGSM/PGD, under the classifier-only and the adaptive threat. A rerun skips
# the models already published and the cells already in the results table.
# Knobs (environment): LABEL, SETTING (the setting's overrides), EPOCHS, TRAIN_LIMIT,
# TARGET_EPOCHS, VOTERS (comma-separated classifier configs), DRAWS, VOTER_EPOCHS, VOTER_LIMIT
# (the voters' training images), VOTER_SUFFIX (voters named <voter><suffix>, so that longer-trained
# voters stand beside the first ones), VOTER_AUGMENT (their data/augment config, chapter 4's `voter`
# unless set; empty for none), N (clean and classifier threat), N_PIPE (pipeline threat), EPS, RESULTS.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LABEL=${LABEL:-kl0.01}
read -r -a setting <<<"${SETTING:-defense.kl_weight=0.01}"
EPOCHS=${EPOCHS:-8}
TRAIN_LIMIT=${TRAIN_LIMIT:-20000}
TARGET_EPOCHS=${TARGET_EPOCHS:-5}
VOTERS=${VOTERS:-fmnist_b,fmnist_c,resnet20}
DRAWS=${DRAWS:-3}
VOTER_EPOCHS=${VOTER_EPOCHS:-5}
VOTER_LIMIT=${VOTER_LIMIT:-$TRAIN_LIMIT}
VOTER_SUFFIX=${VOTER_SUFFIX:-}
VOTER_AUGMENT=${VOTER_AUGMENT-voter}
N=${N:-1000}
N_PIPE=${N_PIPE:-200}
EPS=${EPS:-"[0,0.1,0.3]"}
RESULTS=${RESULTS:-results/vae_setting}
name=sfl_vae_$LABEL
common=(data=fmnist data.image_size=32 logger=csv "data.module.train_limit=$TRAIN_LIMIT")
source scripts/cpu_sizes.sh
purifier=("${common[@]}" defense=sfl_vae "defense.name=$name" $(cpu_size sfl_vae) "${setting[@]}")
IFS=, read -r -a voters <<<"$VOTERS"
named=$(IFS=,; echo "${voters[*]/%/$VOTER_SUFFIX}")
vote=("${common[@]}" defense=sfl_vae_vote "defense.name=vote_$name$VOTER_SUFFIX" "defense.purifier=$name"
  "defense.voters=[$named]" "defense.draws=$DRAWS" retrained=true)
published() { [ -f "checkpoints/fmnist/32px/$1.ckpt" ]; }

published fmnist_a || $PY -m src.train experiment=demo
published "$name" || $PY -m src.train "${purifier[@]}" "trainer.max_epochs=$EPOCHS"
published "fmnist_a+$name" || $PY -m src.train "${purifier[@]}" task=retrain classifier=fmnist_a \
  "trainer.max_epochs=$TARGET_EPOCHS"
for retrained in false true; do
  $PY -m src.eval "${purifier[@]}" "retrained=$retrained" attack=fgsm eval.n=10000 "eval.eps=[0]" \
    "paths.results_dir=$RESULTS"
done

voter_data=("${purifier[@]/#data.module.train_limit=*/data.module.train_limit=$VOTER_LIMIT}")
[ -z "$VOTER_AUGMENT" ] || voter_data+=("data/augment=$VOTER_AUGMENT")
for voter in "${voters[@]}"; do
  published "$voter$VOTER_SUFFIX+$name" || $PY -m src.train "${voter_data[@]}" task=retrain \
    "classifier=$voter" "classifier.name=$voter$VOTER_SUFFIX" \
    "trainer.max_epochs=$VOTER_EPOCHS"
done
tables=checkpoints/fmnist/32px/vote_$name$VOTER_SUFFIX-tables-*.ckpt
compgen -G "$tables" >/dev/null || $PY -m src.train "${vote[@]}" task=tables
$PY -m src.eval -m "${vote[@]}" attack=fgsm,pgd threat=classifier "eval.n=$N" "eval.eps=$EPS" \
  "eval.analyses=[vote_analysis]" "paths.results_dir=$RESULTS"
$PY -m src.eval -m "${vote[@]}" attack=fgsm,pgd threat=pipeline "eval.n=$N_PIPE" "eval.eps=$EPS" \
  "paths.results_dir=$RESULTS"
$PY -m src.report "paths.results_dir=$RESULTS" "paths.report_dir=$RESULTS"
