# qrobust: `make repro` runs the default study, `make test` runs the test suite.
# Both start with `make setup`, which is idempotent: a venv with pinned packages, the dataset, Chromium.

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
DATASET_DIR := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# One pytest worker per core (pytest-xdist); the tests that share the smoke study run on one of them
# (tests/conftest.py schedules them).
PYTEST_WORKERS ?= auto

# Stage commands call `python`; DVC must find the venv's.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro smoke deps test test-formats test-fast compare audit check lint benchmark clean

setup: $(STAMP) $(DATASET_DIR) $(CHROMIUM)

$(STAMP): requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip==26.3
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(DATASET_DIR):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y dataset-fashion-mnist

# The browser the report tests render the pages in (headless).
$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium

# The whole params file against the catalogues, and dvc.code.yaml against params.yaml and the imports.
check: setup
	$(BIN)/python -m qrobust.tools.check params.yaml
	$(BIN)/python -m qrobust.tools.code_deps --check

# After adding or removing an attack in params.yaml, or changing which modules an attack imports.
deps: setup
	$(BIN)/python -m qrobust.tools.code_deps

repro: check
	$(BIN)/dvc repro

smoke: setup
	$(BIN)/python -m qrobust.tools.study smoke build/smoke
	cd build/smoke && $(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not formats" $(PYTEST_ARGS)

# The whole smoke study on MNIST- and SVHN-format files (CIFAR-10's runs in make test): 8 minutes more.
test-formats: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m formats $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow and not formats" $(PYTEST_ARGS)

# Compare two revisions (branches, commits, DVC experiments, or workspace) on one page:
#   make compare A=main B=my-experiment   ->  build/compare/index.html
compare: setup
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=<revision> B=<revision>"; exit 2; }
	$(BIN)/python -m qrobust.tools.compare "$(A)" "$(B)" --out build/compare

# Audit a run against the committed one: every number identical, within noise (samples and seeds) or
# beyond it; exit status 1 when anything is beyond noise (qrobust.tools.audit).
#   make audit                           ->  this workspace's outputs against HEAD's  ->  build/audit/index.html
#   make audit RUN=../their-clone        ->  another run's project folder (or a revision, an experiment)
#   dvc repro --force && make audit      ->  re-run the whole study on this machine, then audit it
audit: setup
	$(BIN)/python -m qrobust.tools.audit "$(or $(RUN),workspace)" --against "$(or $(AGAINST),HEAD)"

lint: setup
	$(BIN)/ruff check src stages tests benchmarks
	$(BIN)/ruff format --check src stages tests benchmarks

# The benchmark suite after `make repro`: build/benchmark.json and a Markdown table (BENCHMARK_ARGS=--compile adds
# INC int8 under torch.compile, about 40 s of compilation per model).
benchmark: setup
	$(BIN)/python benchmarks/run.py $(BENCHMARK_ARGS)

clean:
	rm -rf build
