# GAIR Explorer. Quick start: `make demo`, `make test`. Every target sets itself up.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
WORLD ?= data/world
PYTEST_ARGS ?=

.PHONY: help setup test lint format demo bench train-demo world clean

help:
	@echo "make demo        set up, build the demo world and index, serve the app on :8501"
	@echo "make test        set up, lint, run the whole test suite (slow tests included)"
	@echo "make bench       run the benchmarks; JSON results under benchmarks/results/"
	@echo "make train-demo  train the demo checkpoint into checkpoints/demo/"
	@echo "make world       build the embedded demo world into $(WORLD)"

# The virtualenv is (re)built whenever a requirements file or pyproject changes.
$(STAMP): requirements.txt requirements-data.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps -r requirements-data.txt
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

world: $(STAMP)
	$(VENV)/bin/gair world build --out $(WORLD)

demo: world
	@echo "demo: world built at $(WORLD)"

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

train-demo: world
	$(VENV)/bin/gair train --config train/configs/demo.yaml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
