#!/usr/bin/env bash
# VQUNet on CIFAR-10 (JPEG copy) at the cpu plan's settings, trained 4 epochs instead
# of 1, each epoch's model kept (callbacks=snapshots), then PGD eps 0.03 under the classifier and
# pipeline threats. Needs the cpu plan's cifar_a (scripts/reproduce.sh cifar10 cpu, its targets stage).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export ADVPURIFY_DATA=${ADVPURIFY_DATA:-../shared/data} OMP_NUM_THREADS=2
PY=.venv/bin/python
name=vqunet_budget
snap=checkpoints/snapshots/cifar10/$name
model=(experiment=cifar10_cpu defense=vqunet defense.name=$name defense.width=16 defense.lr=0.001)
[ -f checkpoints/reproduce/cifar10_cpu/cifar10/32px/$name.ckpt ] || $PY -m src.train "${model[@]}" \
  trainer.max_epochs=4 data.module.train_limit=30000 callbacks=snapshots callbacks.snapshots.dirpath=$snap
for k in 1 2 4; do
  at=(defense_ckpt=$snap/epoch$(printf %03d $((k - 1))).ckpt paths.results_dir=results/vqunet_budget/e$k)
  $PY -m src.eval "${model[@]}" "${at[@]}" attack=pgd threat=classifier eval.n=1000 "eval.eps=[0.03]"
  $PY -m src.eval "${model[@]}" "${at[@]}" attack=pgd threat=pipeline eval.n=100 "eval.eps=[0.03]"
done
