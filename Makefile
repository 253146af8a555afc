# Two commands on a fresh machine: `make repro` (set up + run the pipeline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

# Sweep: GRID is ';'-separated groups of key=v1,v2 overrides; DVC queues every combination of a group.
GRID ?= kd.T=1,2,4 kd.alpha=0.5,0.9; kd.alpha=0
JOBS ?= 1
# Tune: an Optuna study over params.yaml's tune.space with JOBS workers here; TRIALS overrides tune.trials.
TRIALS ?=
# Diff: the revision `make diff` compares the workspace with; PLOTS_DIR renders changed plots, OUTPUT writes a file,
# TOLERANCE overrides diff.tolerance of params.yaml (a metric difference at most this is float noise).
REV ?= main
PLOTS_DIR ?=
OUTPUT ?=
TOLERANCE ?=

# Remote: `make pull` / `make push` check the DVC remote (REMOTE, default: the default remote) answers, then run
# `dvc pull` / `dvc push` with DVC_ARGS (e.g. DVC_ARGS=--allow-missing).
REMOTE ?=
DVC_ARGS ?=

# Test: the suite in TEST_WORKERS processes (pytest-xdist; 'auto': one per core, at most 4), whole modules each.
TEST_WORKERS ?= auto
XDIST = -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile --no-loadscope-reorder

# Predict: `make predict MODEL=models/students/kd/seed_0 INPUT=new_rows.csv OUTPUT=predictions.csv` (docs/predict.md);
# PREDICT_ARGS passes options, e.g. PREDICT_ARGS="--scores logits --int8".
MODEL ?= models/students/kd/seed_0
INPUT ?=
PREDICT_ARGS ?=

# Export: `make export [OUT=export/kd] [KIND=kd|hard] [SEED=<seed>]` copies one student (default: the seed best on
# validation) with its model card (docs/predict.md).
KIND ?= kd
OUT ?= export/$(KIND)
SEED ?=

# Preset: `make preset PRESET=sst2-minilm [SET="train.seeds=[0] kd.T=4"]` rewrites params.yaml (see presets/).
PRESET ?=
SET ?=

.PHONY: setup repro test test-fast bench clean sweep sweep-report tune diff preset predict export pull push

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# repro: `dvc repro`, then the metrics table.
repro: setup
	dvc repro
	python -m distillery.evaluation.report reports/metrics.json

test: setup
	python -m pytest -q $(XDIST)

test-fast: setup   # the unit tests, without the end-to-end ones marked slow
	python -m pytest -q -m "not slow" $(XDIST)

sweep: setup
	python -m distillery.experiments.sweep --grid "$(GRID)" --jobs $(JOBS)

sweep-report: setup
	python -m distillery.experiments.sweep_report

tune: setup
	python -m distillery.experiments.tune --jobs $(JOBS) $(if $(TRIALS),--trials $(TRIALS))

diff: setup
	@python -m distillery.experiments.pr_report --rev="$(REV)" $(if $(PLOTS_DIR),--plots="$(PLOTS_DIR)") $(if $(OUTPUT),--output="$(OUTPUT)") $(if $(TOLERANCE),--tolerance="$(TOLERANCE)")

pull: setup
	python -m distillery.experiments.remote pull $(if $(REMOTE),--remote "$(REMOTE)") $(DVC_ARGS)

push: setup
	python -m distillery.experiments.remote push $(if $(REMOTE),--remote "$(REMOTE)") $(DVC_ARGS)

preset: setup
	@test -n "$(PRESET)" || { echo "error: give PRESET=<name>; available: $$(ls presets | sed 's/\.yaml$$//' | tr '\n' ' ')" >&2; exit 2; }
	python -m distillery.experiments.presets "$(PRESET)" $(foreach s,$(SET),--set '$(s)')

predict: setup
	@test -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "error: give INPUT=<rows file> OUTPUT=<predictions file> (and MODEL=<model dir>, default $(MODEL))" >&2; exit 2; }
	python -m distillery.predict "$(MODEL)" "$(INPUT)" "$(OUTPUT)" $(PREDICT_ARGS)

export: setup
	python -m distillery.export "$(OUT)" --kind $(KIND) $(if $(SEED),--seed $(SEED))

bench: setup
	python bench/pipeline_time.py
	python bench/seed_processes.py
	python bench/yaml_loader.py
	python bench/trainer_overhead.py
	python bench/threads_under_load.py
	python bench/text_step_threads.py
	python bench/remote_pull.py
	python bench/processes.py --preset digits-mlp --steps 1500
	python bench/caching.py
	python bench/more_seeds.py
	python bench/token_logits_memory.py
	python bench/top_k_batches.py
	python bench/live_teacher.py
	python bench/teacher_throughput.py
	python bench/trainer_step_minilm.py
	python bench/cpu_numerics.py
	python bench/cpu_paths.py
	python bench/mkl_branches.py
	python bench/test_suite.py

clean:
	rm -rf .cache/checkpoints .cache/tokenized
