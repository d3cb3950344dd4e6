# td-networks: the two commands of the README.
#   make book   set up (if needed), run every notebook at PROFILE (default quick) and build the book
#   make test   set up (if needed), lint, type-check and run the test suite (notebooks at smoke)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
PYTEST_ARGS ?=
export TDLIB_DATA ?= $(abspath ../shared/data)

.PHONY: env browser-deps foolbox2 lint typecheck pytest test book sweep html bench clean-book

env:
	@VENV=$(VENV) bash scripts/setup_env.sh

browser-deps:
	@bash scripts/setup_browser.sh

# foolbox 2.2.1 (the paper's attack library) in a side folder for tests/attacks/test_foolbox2.py; offline
# without a wheel (FOOLBOX2_WHEEL) it cannot install, and that test skips
foolbox2: env
	@VENV=$(VENV) bash scripts/setup_foolbox2.sh || echo "[foolbox2] not installed: tests/attacks/test_foolbox2.py will skip"

lint: env
	$(VENV)/bin/ruff check tdlib tests benchmarks scripts notebooks hubconf.py conftest.py

typecheck: env
	$(VENV)/bin/mypy

pytest: env browser-deps foolbox2
	$(PY) -m pytest -m "not slow" tests tdlib $(PYTEST_ARGS)

test: lint typecheck pytest

sweep: env
	$(PY) -m tdlib sweep --profile $(PROFILE)

html: env
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

book: sweep html
	@echo "book: $(abspath _build/html/index.html)"

bench: env
	$(PY) -m benchmarks.run

clean-book:
	rm -rf _build book/executed
