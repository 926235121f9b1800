# mnistlab tasks. `make help` lists them.
PYTHON ?= .venv/bin/python
DATA_ROOT ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)
export MNISTLAB_DATA_ROOT ?= $(DATA_ROOT)

.PHONY: help install train test test-fast lint format clean sweep report bench studies

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## create .venv and install mnistlab with dev tools
	python3 -m venv .venv
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -e '.[dev]'

train:  ## one run with the default config (data root: $(DATA_ROOT))
	$(PYTHON) train.py

BENCH_OUT ?= outputs/bench.json
bench:  ## throughput: standard pipeline vs mnistlab vs plain loop (BENCH_ARGS=--quick; JSON in $(BENCH_OUT))
	$(PYTHON) -m benchmarks.bench --out $(BENCH_OUT) $(BENCH_ARGS)

SWEEP_EPOCHS ?= 3
SWEEP_STAMP := $(shell date +%Y-%m-%d_%H-%M-%S)
SWEEP_DIR ?= multirun/sweep_$(SWEEP_STAMP)

sweep:  ## flagship study: softmax/mlp/cnn x sgd/adam x 3 seeds on Fashion-MNIST, 2 parallel jobs, then the report
	$(PYTHON) train.py -m launcher=joblib hydra.launcher.n_jobs=2 data=fashion_mnist \
		model=softmax,mlp,cnn optimizer=sgd,adam seed=1,2,3 trainer.max_epochs=$(SWEEP_EPOCHS) \
		trainer.enable_progress_bar=false hydra.sweep.dir=$(SWEEP_DIR)
	@echo "sweep report: $(SWEEP_DIR)/report.html (table: $(SWEEP_DIR)/report.md, rows: $(SWEEP_DIR)/summary.csv)"

report:  ## (re)build a sweep's report: make report DIR=multirun/<date>/<time>
	$(PYTHON) -m mnistlab.report $(DIR)

# The lab notebook: every study (conf/experiment/, not the best_*/speedrun_* recipes) into
# $(STUDIES_DIR)/<study>, then one notebook.html. Shorten with EPOCHS=, SEEDS= (a count),
# LIMIT= (train batches per epoch), LIMIT_EVAL= (val and test batches); DATA=fashion_mnist
# runs every study on Fashion-MNIST (default: each study's own data set; a study that sweeps
# the data set itself, transfer, keeps its grid); ARGS= adds overrides to every study.
STUDIES ?= $(filter-out best_% speedrun_%,$(sort $(basename $(notdir $(wildcard conf/experiment/*.yaml)))))
STUDIES_DIR ?= multirun/studies_$(SWEEP_STAMP)
STUDY_ARGS = $(if $(EPOCHS),trainer.max_epochs=$(EPOCHS)) \
	$(if $(SEEDS),seed=$(shell seq -s, 1 $(SEEDS))) \
	$(if $(LIMIT),trainer.limit_train_batches=$(LIMIT)) \
	$(if $(LIMIT_EVAL),trainer.limit_val_batches=$(LIMIT_EVAL) trainer.limit_test_batches=$(LIMIT_EVAL)) \
	$(ARGS)

studies:  ## run the studies, then the lab notebook (STUDIES="lr depth" EPOCHS=1 SEEDS=1 DATA=fashion_mnist LIMIT=20)
	@set -e; for study in $(STUDIES); do \
		data="$(if $(DATA),data=$(DATA))"; \
		if [ -n "$$data" ] && grep -Eq '^ +data: ' conf/experiment/$$study.yaml; then \
			echo "$$study sweeps the data set itself: DATA=$(DATA) not applied"; data=""; fi; \
		echo "== experiment=$$study -> $(STUDIES_DIR)/$$study"; \
		$(PYTHON) train.py -m experiment=$$study $$data $(strip $(STUDY_ARGS)) \
			hydra.sweep.dir=$(STUDIES_DIR)/$$study; \
	done
	$(PYTHON) -m mnistlab.report --notebook $(STUDIES_DIR)

test:  ## the whole test suite (real-data smoke runs included)
	$(PYTHON) -m pytest -q

test-fast:  ## tests that train nothing on real data
	$(PYTHON) -m pytest -q -m "not slow"

lint:  ## ruff
	$(PYTHON) -m ruff check src tests benchmarks train.py eval.py
	$(PYTHON) -m ruff format --check src tests benchmarks train.py eval.py

format:  ## ruff format + autofix
	$(PYTHON) -m ruff format src tests benchmarks train.py eval.py
	$(PYTHON) -m ruff check --fix src tests benchmarks train.py eval.py

clean:  ## remove run outputs and caches (keeps .venv and data)
	rm -rf outputs multirun lightning_logs wandb .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
