# Idempotent entry points: `make demo` and `make test` (the README's quick start).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Real datasets shipped beside the project (no downloads); src reads ADVPURIFY_DATA.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)),)
export ADVPURIFY_DATA ?= $(SHARED_DATA)
endif

.PHONY: setup demo test findings lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	bash scripts/demo.sh

test: setup
	$(PY) -m pytest -m "not slow"

# The findings tables (README.md, benchmarks/RESULTS.md), benchmarks/findings.csv and the
# docs/findings_<data>.png figures, from the committed rows: seconds, no training, no attack.
findings: setup
	$(PY) -m src.reporting.findings

# Attack throughput: native vs ART vs torchattacks (needs checkpoints/fmnist/fmnist_a.ckpt, from
# `make demo`). torchattacks is the benchmark's alone and goes in with --no-deps: its pin
# requests~=2.25.1 would downgrade requests and urllib3 under wandb; it runs on ours.
bench: setup
	$(PY) -m pip install --quiet --no-deps torchattacks==3.5.1
	$(PY) benchmarks/attack_throughput.py

lint: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/pre-commit run --all-files

clean:
	rm -rf outputs multirun .pytest_cache
