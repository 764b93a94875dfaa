#!/usr/bin/env bash
# One purifier reading trained to a validation plateau (callbacks=plateau: early stopping on its
# val/recon, every epoch's model kept), then its final model attacked: the clean row on the whole
# test set; FGSM, BIM, PGD and CW at three budgets (Fashion-MNIST 0.1/0.2/0.3, CIFAR-10
# 0.01/0.02/0.03) under the dissertation's (classifier) threat;
# PGD under the adaptive pipeline threat; AutoAttack (APGD-CE + APGD-T) through the pipeline; and
# attacks the purifier never trained on (CW, DeepFool under L2, APGD-T, and PGD, BIM and FGSM crafted
# on a DenseNet the attacker trained itself: the transfer threat). Rows land in $RESULTS.
# Knobs (environment): DATA (fmnist or cifar10; the target is its fmnist_a or cifar_a, trained
# first where missing), DEFENSE, NAME (the model's own name), EXTRA (overrides, e.g.
# "defense.train_inputs=clean"), MAX_EPOCHS (the ceiling), PATIENCE, TRAIN_LIMIT, VAL_LIMIT
# (unset: the whole split), N_CLEAN, N, N_PIPE, N_AA, SEED, RESULTS, MIN_DELTA; ATTACKS and EPS
# (the classifier-threat grid), HEADLINE (the two budgets of the AutoAttack and transfer cells),
# DEEPFOOL (its L2 budgets), PIPE (overrides for the pipeline cells, e.g.
# "threat.eot_samples=1"), AA (the AutoAttack overrides); CELLS picks which groups of cells run
# (default all: clean classifier pipeline autoattack deepfool transfer); SURROGATES are the models
# the transfer cells craft on, round robin (trained first where missing: SURROGATE_EPOCHS on
# SURROGATE_LIMIT clean images), with each of TRANSFER_ATTACKS on N_TRANSFER images; CKPT attacks
# that checkpoint instead (an epoch's snapshot) and trains nothing; RETRAIN=1 first retrains the
# target on the purifier's outputs (TARGET_EPOCHS on TARGET_LIMIT images, as the dissertation does
# for VQUNet and Defense-VAE) and attacks that one. Rerunning skips what is done (published models, finished
# cells) and goes on from the last epoch of a training stopped part-way.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-fmnist}
case $DATA in
  fmnist) target=fmnist_a grid=[0.1,0.2,0.3] headline=[0.1,0.3] deepfool=[1.0,2.0,3.0]
    train_target=(experiment=demo) ;;
  # the cpu plan's cifar_a (6 epochs, conf/experiment/cifar10_cpu.yaml); DeepFool at CIFAR's usual L2 0.5
  cifar10) target=cifar_a grid=[0.01,0.02,0.03] headline=[0.01,0.03] deepfool=[0.25,0.5,1.0]
    train_target=(data=cifar10 data.image_size=32 classifier=cifar_a logger=csv trainer.max_epochs=6) ;;
  *) echo "DATA=$DATA: choose fmnist or cifar10" >&2; exit 2 ;;
esac
DEFENSE=${DEFENSE:-vqunet}
NAME=${NAME:-${DEFENSE}_plateau}
MAX_EPOCHS=${MAX_EPOCHS:-30}
PATIENCE=${PATIENCE:-3}
MIN_DELTA=${MIN_DELTA:-0.0002}   # a plateau: val/recon bettered by less than this, PATIENCE epochs running
TRAIN_LIMIT=${TRAIN_LIMIT:-20000}
N_CLEAN=${N_CLEAN:-10000}
N=${N:-1000}
N_PIPE=${N_PIPE:-200}
N_AA=${N_AA:-100}
SEED=${SEED:-0}
ATTACKS=${ATTACKS:-fgsm bim pgd cw}
EPS=${EPS:-$grid}
HEADLINE=${HEADLINE:-$headline}
DEEPFOOL=${DEEPFOOL:-$deepfool}
CELLS=${CELLS:-clean classifier pipeline autoattack deepfool transfer}
# the cheapest of conf/threat/transfer.yaml's three DenseNets: PGD's gradients cost about 1.5x as
# much through densenet50_24 and 2.5x through densenet100_12 on this 2-core CPU
SURROGATES=${SURROGATES:-densenet50_12}
SURROGATE_EPOCHS=${SURROGATE_EPOCHS:-6}   # 2 epochs on 10k left densenet50_12 at 74% clean, a weak attacker
SURROGATE_LIMIT=${SURROGATE_LIMIT:-$TRAIN_LIMIT}
N_TRANSFER=${N_TRANSFER:-500}
# PGD's 40 small steps fit the surrogate closely and transfer least; FGSM's one step transfers most
TRANSFER_ATTACKS=${TRANSFER_ATTACKS:-pgd bim fgsm}
for cell in $CELLS; do
  case $cell in clean | classifier | pipeline | autoattack | deepfool | transfer) ;;
  *) echo "CELLS has '$cell': choose from clean classifier pipeline autoattack deepfool transfer" >&2; exit 2 ;;
  esac
done
RETRAIN=${RETRAIN:-0}
TARGET_EPOCHS=${TARGET_EPOCHS:-6}   # the epochs the original target trained for (experiment=demo)
TARGET_LIMIT=${TARGET_LIMIT:-$TRAIN_LIMIT}
RESULTS=${RESULTS:-results/plateau/$DATA}
read -r -a extra <<<"${EXTRA:-}"
read -r -a pipe <<<"${PIPE:-}"
read -r -a aa <<<"${AA:-attack.version=custom attack.attacks=[apgd-ce,apgd-t]}"
source scripts/cpu_sizes.sh
common=("data=$DATA" data.image_size=32 "classifier=$target" logger=csv "seed=$SEED")
model=("${common[@]}" "defense=$DEFENSE" "defense.name=$NAME" $(cpu_size "$DEFENSE") "${extra[@]}")
suffix=$([ "$SEED" = 0 ] && echo "" || echo "-seed$SEED")

models=checkpoints/$DATA/32px
# a training stopped part-way (a killed job, a machine taken back) goes on from its last epoch
resume() { ls checkpoints/runs/"$DATA"/"$1"-*/last.ckpt >/dev/null 2>&1 && echo true || echo false; }
[ -f "$models/$target.ckpt" ] || $PY -m src.train "${train_target[@]}" "resume=$(resume "$target")"
[ -n "${CKPT:-}" ] || [ -f "$models/$NAME$suffix.ckpt" ] || $PY -m src.train "${model[@]}" callbacks=plateau "resume=$(resume "$NAME")" \
  "callbacks.snapshots.dirpath=checkpoints/snapshots/$DATA/$NAME$suffix" \
  "callbacks.early_stopping.patience=$PATIENCE" "callbacks.early_stopping.min_delta=$MIN_DELTA" \
  "trainer.max_epochs=$MAX_EPOCHS" \
  "data.module.train_limit=$TRAIN_LIMIT" ${VAL_LIMIT:+"data.module.val_limit=$VAL_LIMIT"}
ckpt="defense_ckpt=${CKPT:-$models/$NAME$suffix.ckpt}"
retrained=false
if [ "$RETRAIN" = 1 ]; then
  retrained=true
  [ -f "$models/$target+$NAME$suffix.ckpt" ] || $PY -m src.train "${model[@]}" "$ckpt" \
    task=retrain "trainer.max_epochs=$TARGET_EPOCHS" "data.module.train_limit=$TARGET_LIMIT"
fi
eval() { $PY -m src.eval "${model[@]}" "$ckpt" "retrained=$retrained" "paths.results_dir=$RESULTS" "$@"; }
wants() { [[ " $CELLS " == *" $1 "* ]]; }
! wants clean || eval attack=fgsm threat=classifier "eval.n=$N_CLEAN" "eval.eps=[0]"
if wants classifier; then
  for attack in $ATTACKS; do
    eval "attack=$attack" threat=classifier "eval.n=$N" "eval.eps=$EPS"
  done
fi
! wants pipeline || eval attack=pgd threat=pipeline "${pipe[@]}" "eval.n=$N_PIPE" "eval.eps=$EPS"
! wants autoattack || eval attack=autoattack threat=pipeline "${pipe[@]}" "${aa[@]}" "eval.n=$N_AA" "eval.eps=$HEADLINE"
! wants deepfool || eval attack=deepfool threat=classifier "eval.n=$N" "eval.eps=$DEEPFOOL"
if wants transfer; then
  for surrogate in $SURROGATES; do
    [ -f "$models/$surrogate.ckpt" ] || $PY -m src.train "data=$DATA" data.image_size=32 \
      "classifier=$surrogate" logger=csv "trainer.max_epochs=$SURROGATE_EPOCHS" "resume=$(resume "$surrogate")" \
      "data.module.train_limit=$SURROGATE_LIMIT" data.module.val_limit=1000
  done
  # crafted once on the surrogates, kept by content: every purifier's transfer cell reuses them
  for attack in $TRANSFER_ATTACKS; do
    eval "attack=$attack" threat=transfer "threat.surrogates=[${SURROGATES// /,}]" "eval.n=$N_TRANSFER" \
      "eval.eps=$HEADLINE" paths.crafted_dir=checkpoints/crafted eval.part_size=250
  done
fi
