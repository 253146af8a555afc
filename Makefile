# Two commands on a fresh machine: `make repro` (set up + run the pipeline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

repro: setup
	dvc repro
	python -m distillery.report reports/metrics.json

test: setup
	python -m pytest -q

bench: setup
	python bench/pipeline_time.py

clean:
	rm -rf .cache/checkpoints
