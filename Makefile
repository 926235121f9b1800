# mnistlab tasks. `make help` lists them.
PYTHON ?= .venv/bin/python
DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),../shared/data,data)
export MNISTLAB_DATA_ROOT ?= $(DATA)

.PHONY: help install train test test-fast lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## create .venv and install mnistlab with dev tools
	python3 -m venv .venv
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -e '.[dev]'

train:  ## one run with the default config (data root: $(DATA))
	$(PYTHON) train.py

test:  ## the whole test suite (real-data smoke runs included)
	$(PYTHON) -m pytest -q

test-fast:  ## tests that train nothing on real data
	$(PYTHON) -m pytest -q -m "not slow"

lint:  ## ruff
	$(PYTHON) -m ruff check src tests train.py
	$(PYTHON) -m ruff format --check src tests train.py

format:  ## ruff format + autofix
	$(PYTHON) -m ruff format src tests train.py
	$(PYTHON) -m ruff check --fix src tests train.py

clean:  ## remove run outputs and caches (keeps .venv and data)
	rm -rf outputs multirun lightning_logs wandb .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
