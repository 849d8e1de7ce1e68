# govrisk — two commands: `make demo` (set up + run the pipeline) and `make test` (set up + test).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# 2-core machines: keep OpenMP/BLAS from oversubscribing.
export OMP_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
# Idle OpenMP threads sleep instead of spinning (spinning is ~6x slower on a busy machine).
export OMP_WAIT_POLICY ?= PASSIVE
DEMO_DIR ?= demo-output

.PHONY: setup demo test test-slow test-all lint typecheck format services browser bench clean help

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

setup: $(VENV)/.synced  ## create .venv from the lock file

services:  ## make sure PostgreSQL on 127.0.0.1:5432 is up (tests use it)
	@bash .ci/ensure-postgres

browser:  ## install Debian's Chromium for the browser tests
	@bash .ci/ensure-chromium

demo: setup  ## run the whole pipeline on a simulated marketplace (writes $(DEMO_DIR)/)
	$(BIN)/govrisk demo --out $(DEMO_DIR)

lint: setup  ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup services browser lint  ## lint, type-check and run the default test suite
	$(BIN)/pytest -n 2 --dist loadgroup

test-slow: setup services  ## the slow tests only
	$(BIN)/pytest -m slow

bench: setup  ## run every benchmark and print the tables
	$(BIN)/python -m experiments.benchmarks

clean:  ## remove environments and outputs
	rm -rf $(VENV) $(TOOLS) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
