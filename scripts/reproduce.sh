#!/usr/bin/env bash
# The whole reproduction of one dataset at one size, resumable: src/reproduce.py.
#   scripts/reproduce.sh fmnist smoke                    # every stage in minutes on a CPU
#   scripts/reproduce.sh cifar10 cpu budget_minutes=120  # as far as two hours go; rerun to go on
#   scripts/reproduce.sh fmnist full trainer=gpu         # the dissertation's sizes
# Further arguments are overrides for every run (or budget_minutes=, dry_run=true).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [[ $# -lt 1 || ! $1 =~ ^(fmnist|cifar10)$ ]]; then
  echo "usage: scripts/reproduce.sh <fmnist|cifar10> [smoke|cpu|full] [overrides...]" >&2
  exit 2
fi
data=$1; shift
size=cpu
if [[ $# -gt 0 && $1 != *=* ]]; then
  [[ $1 =~ ^(smoke|cpu|full)$ ]] || { echo "size must be smoke, cpu or full, not '$1'" >&2; exit 2; }
  size=$1; shift
fi
exec $PY -m src.reproduce "experiment=${data}_$size" "$@"
