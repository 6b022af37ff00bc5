# GAIR Explorer. Quick start: `make demo`, `make test`. Every target sets itself up.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
WORLD ?= data/world
INDEX ?= data/index
CHECKPOINT ?= checkpoints/demo
GRID ?= h3:4
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: help setup test lint format demo serve index vendor browser bench train-demo eval-demo world clean

help:
	@echo "make demo        set up, build the demo world and index, serve the app on :8501"
	@echo "make test        set up, lint, run the whole test suite (slow tests included)"
	@echo "make bench       run the benchmarks; JSON results under benchmarks/results/"
	@echo "make train-demo  train the demo checkpoint into checkpoints/demo/"
	@echo "make world       build the embedded demo world into $(WORLD)"
	@echo "make index       build the demo index from $(CHECKPOINT) into $(INDEX)"
	@echo "make serve       serve the app on :$(PORT) (needs a built index)"

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

# Tests reuse the demo world (built once, idempotent) and run the browser test too.
test: lint world vendor browser
	GAIR_TEST_WORLD=$(WORLD) $(PY) -m pytest $(PYTEST_ARGS)

world: $(STAMP)
	$(VENV)/bin/gair world build --out $(WORLD)

# Browser assets (Leaflet from the npm registry) that the app serves itself: works offline.
vendor: app/static/vendor/leaflet/leaflet.js
app/static/vendor/leaflet/leaflet.js:
	bash scripts/vendor_assets.sh

# Headless Chromium from Debian packages, for the end-to-end browser test.
browser:
	bash scripts/install_browser.sh

# The demo index: every land H3 resolution-4 cell (81,820, ~45 km apart) plus a street-view gallery.
# Finer: `make index GRID=h3:5 INDEX=data/index-h3-5` (572,615 cells, 9 min) or GRID=h3:6
# (4,059,982 cells, ~36 min, 5.2 GB, 15.5 GB peak RAM; README "Grain").
# The index format follows index/build.py and index/integrity.py, its labels the world and its
# predictions the heads: a change to any of them rebuilds it.
# `index` first brings the world up to date, then decides in a fresh make (which sees the
# rebuilt world's manifest; one make caches the time it read before the rebuild).
$(INDEX)/manifest.json: $(CHECKPOINT)/model.safetensors $(CHECKPOINT)/config.json $(wildcard $(CHECKPOINT)/heads.safetensors) index/build.py index/integrity.py $(WORLD)/manifest.json
	$(VENV)/bin/gair index build --checkpoint $(CHECKPOINT) --world $(WORLD) --grid $(GRID) --land-only --gallery-size 10000 --out $(INDEX)

index: world
	@$(MAKE) --no-print-directory $(INDEX)/manifest.json

$(WORLD)/manifest.json: | $(STAMP)
	$(VENV)/bin/gair world build --out $(WORLD)

serve: serve-app

demo: world index vendor app-tiles serve-app

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

train-demo: world
	$(VENV)/bin/gair train --config train/configs/demo.yaml --out $(CHECKPOINT)

# The shipped eval.json and heads (README "Evaluation"): ~25 min on 2 idle cores.
eval-demo: world
	$(VENV)/bin/gair eval --checkpoint $(CHECKPOINT) --world $(WORLD) --n-land 12000 --n-train 5000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

# --- the map app (issue 7) -------------------------------------------------------------------
# One BLAS/OpenMP thread per request: the app serves sessions in parallel on few cores.
APP_ENV ?= OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

.PHONY: app-tiles serve-app e2e app-screenshots bench-app

# The demo world's RS layer as Web Mercator tiles (app/static/tiles/, git-ignored). The app also
# builds them in the background on its first start; this makes that start instant.
app-tiles: world
	$(PY) -m app.assets tiles --world $(WORLD)

# Serve the app as `make demo` should: local Leaflet, basemap tiles ready, thread settings.
# Any index (INDEX=...): the demo's basemap tiles come from `make demo`/`make app-tiles`, or the app
# renders them in the background; an index over your own rasters needs no demo world.
serve-app: $(STAMP) vendor
	GAIR_INDEX=$(INDEX) $(APP_ENV) $(VENV)/bin/streamlit run app/main.py --server.port $(PORT) --server.headless true

# The real-browser end-to-end test alone (headless Chromium, no network).
e2e: world vendor browser
	GAIR_TEST_WORLD=$(WORLD) $(PY) -m pytest -m e2e tests/e2e -q

# Regenerate docs/img/app-*.png from the demo index (after `make index` with the trained checkpoint).
app-screenshots: index vendor browser
	GAIR_TEST_WORLD=$(WORLD) GAIR_E2E_INDEX=$(INDEX) GAIR_E2E_SCREENSHOTS=docs/img $(PY) -m pytest -m e2e tests/e2e -q

bench-app: index
	$(APP_ENV) $(PY) -m benchmarks.bench_app --index $(INDEX)
