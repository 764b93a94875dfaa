#!/usr/bin/env bash
# The chapter-3 measurement on Fashion-MNIST (28x28, chapter 3): the target; SFL-VAE, the non-SFL
# VAE, Defense-VAE and Defense-GAN; the target retrained on each VAE's outputs (Defense-GAN
# classifies G(z*) with the original target, as its paper does); the twelve voters retrained
# on SFL-VAE outputs and the Bayesian tables; then, on the test set, clean accuracy and FGSM
# over an eps grid for the VAEs (with the L2 reconstruction distance), FGSM and PGD at 0.1 and
# 0.3 for every defense, and SFL-VAE + voting + Bayes with the voting analysis of section 3.4.5.
# Usage: scripts/sfl_vae_fmnist.sh [purifiers|voters|eval|all]   (default all; phases run in this order)
# Knobs (environment): JOBS (parallel training runs, through launcher=joblib; 1 on a
# CPU), TARGET_EPOCHS, PURIFIER_EPOCHS, VOTER_EPOCHS, N (test images), N_GAN (test images for
# Defense-GAN, whose R x L search costs 2,000 generator passes per image), GAN_SEARCH (e.g.
# "defense.restarts=2 defense.steps=20"; empty = the paper's R=10, L=200), EXTRA (overrides
# for every run, e.g. "trainer=gpu" or "debug=smoke").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
phase=${1:-all}
JOBS=${JOBS:-1}
N=${N:-10000}
N_GAN=${N_GAN:-2000}
read -r -a extra <<<"${EXTRA:-}"
read -r -a gan_search <<<"${GAN_SEARCH:-}"
common=(data=fmnist logger=csv "${extra[@]}")
parallel=(launcher=joblib hydra.launcher.n_jobs="$JOBS")
VAES=sfl_vae,vae,defense_vae
VOTERS=resnet20,resnet32,resnet62,resnet110,densenet50_12,densenet50_24,densenet100_12,densenet100_24,wrn8_8,wrn16_8,wrn16_10,wrn28_10

if [[ $phase == purifiers || $phase == all ]]; then
  $PY -m src.train "${common[@]}" classifier=fmnist_a trainer.max_epochs="${TARGET_EPOCHS:-10}"
  $PY -m src.train -m "${common[@]}" "${parallel[@]}" defense="$VAES",defense_gan \
    trainer.max_epochs="${PURIFIER_EPOCHS:-10}"
  $PY -m src.train -m "${common[@]}" "${parallel[@]}" task=retrain defense="$VAES" classifier=fmnist_a \
    trainer.max_epochs="${TARGET_EPOCHS:-10}"
fi
if [[ $phase == voters || $phase == all ]]; then
  $PY -m src.train -m "${common[@]}" "${parallel[@]}" task=retrain defense=sfl_vae classifier="$VOTERS" \
    trainer.max_epochs="${VOTER_EPOCHS:-5}"
  $PY -m src.train "${common[@]}" task=tables defense=sfl_vae_vote retrained=true
fi
if [[ $phase == eval || $phase == all ]]; then
  $PY -m src.eval -m "${common[@]}" defense=none attack=fgsm,pgd eval.n="$N" 'eval.eps=[0.1,0.3]'
  $PY -m src.eval -m "${common[@]}" defense="$VAES" retrained=true attack=fgsm eval.n="$N" \
    'eval.eps=[0.05,0.1,0.15,0.2,0.25,0.3]'
  $PY -m src.eval -m "${common[@]}" defense="$VAES" retrained=true attack=pgd eval.n="$N" 'eval.eps=[0.1,0.3]'
  $PY -m src.eval -m "${common[@]}" defense=defense_gan "${gan_search[@]}" attack=fgsm,pgd eval.n="$N_GAN" \
    'eval.eps=[0.1,0.3]'
  $PY -m src.eval -m "${common[@]}" defense=sfl_vae_vote retrained=true attack=fgsm,pgd eval.n="$N" \
    'eval.eps=[0.1,0.3]' 'eval.analyses=[vote_analysis]'
  $PY -m src.report
fi
