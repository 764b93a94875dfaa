#!/usr/bin/env bash
# The protocol comparison on Fashion-MNIST padded to 32x32: the dissertation's protocol
# (`threat=paper`: half white-box on the target, half from DenseNets A, B, C, with its cleverhans
# attack settings and with our strong defaults) beside the `classifier` threat and the adaptive
# `pipeline` threat, plus AutoAttack through the pipeline, for no defense, VQUNet, CycleGAN and
# SFL-VAE. Trains what is missing at the CPU sizes below (the full sizes are the configs'
# defaults), then evaluates; a rerun skips every finished cell (eval's fingerprints).
# Knobs (environment): N (images for classifier/paper threats, default 1000), N_CLEAN (the clean
# row, default 10000), N_PIPE (pipeline threat, default 200), N_AA (AutoAttack, default 100),
# AA (AutoAttack overrides, default the two APGD attacks), AA_EPS (default the grid), N_PAPER
# (threat=paper, default N), PAPER_ATTACKS (default fgsm,pgd,cw and the cleverhans presets),
# DEFENSES, RESULTS, PY, EXTRA.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-1000}
N_CLEAN=${N_CLEAN:-10000}
N_PIPE=${N_PIPE:-200}
N_AA=${N_AA:-100}
AA=${AA:-"attack.version=custom attack.attacks=[apgd-ce,apgd-t]"}
AA_EPS=${AA_EPS:-[0.05,0.1,0.2,0.3]}
N_PAPER=${N_PAPER:-$N}
PAPER_ATTACKS=${PAPER_ATTACKS:-fgsm,pgd,cw,bim_cleverhans,pgd_cleverhans}
DEFENSES=${DEFENSES:-none vqunet cyclegan sfl_vae}
RESULTS=${RESULTS:-results/results.csv}
read -r -a extra <<<"${EXTRA:-}"
read -r -a aa <<<"$AA"
common=(data=fmnist data.image_size=32 logger=csv paths.results_file="$RESULTS" "${extra[@]}")
ckpt=checkpoints/fmnist/32px
train() {  # name, then overrides: trains only what is not published yet
  local name=$1; shift
  [[ -f $ckpt/$name.ckpt ]] || $PY -m src.train "${common[@]}" "$@"
}
train fmnist_a classifier=fmnist_a trainer.max_epochs=6
train vqunet defense=vqunet defense.width=16 defense.lr=0.001 trainer.max_epochs=1 data.module.train_limit=30000
train cyclegan defense=cyclegan defense.width=16 defense.disc_width=16 trainer.max_epochs=1 \
  data.module.train_limit=30000
train sfl_vae defense=sfl_vae trainer.max_epochs=1 data.module.train_limit=30000
eps='eval.eps=[0.05,0.1,0.2,0.3]'
all=$(tr ' ' , <<<"$DEFENSES")
paper=(threat=paper threat.white_box=original)  # no retrained targets at this size: the original
# clean accuracy on the full test set, then the oblivious threats: attack outermost, defenses
# innermost, so the defenses share each attack's images (eval's crafted-image cache)
$PY -m src.eval -m "${common[@]}" defense="$all" attack=fgsm eval.n="$N_CLEAN" 'eval.eps=[0]'
$PY -m src.eval -m "${common[@]}" attack=fgsm,pgd,cw defense="$all" eval.n="$N" "$eps"
for defense in $DEFENSES; do
  [[ $defense == none ]] && continue  # the pipeline of no defense is the classifier threat
  $PY -m src.eval -m "${common[@]}" defense="$defense" threat=pipeline attack=fgsm,pgd,cw \
    eval.n="$N_PIPE" "$eps"
done
for defense in $DEFENSES; do
  threat=pipeline; [[ $defense == none ]] && threat=classifier
  $PY -m src.eval "${common[@]}" defense="$defense" threat="$threat" attack=autoattack "${aa[@]}" \
    eval.n="$N_AA" "eval.eps=$AA_EPS"
done
# the surrogates last: the costliest models, needed only by threat=paper
for surrogate in densenet50_12 densenet50_24 densenet100_12; do
  train "$surrogate" classifier="$surrogate" trainer.max_epochs=1 data.module.train_limit=6000 \
    data.module.val_limit=1000
done
$PY -m src.eval -m "${common[@]}" "${paper[@]}" attack="$PAPER_ATTACKS" defense="$all" \
  eval.n="$N_PAPER" "$eps"
$PY -m src.report paths.results_file="$RESULTS" paths.report_dir="$(dirname "$RESULTS")"
