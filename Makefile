# Two commands do all set-up on a fresh machine with Python >= 3.11 and make:
#   make run    install the server into .venv and start a single-node lrukv-server
#   make test   install everything into .venv and run lint, types and the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: run test test-tools lint typecheck proto unit bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[server,postgres,cli]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[all,dev]'
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/lrukv-server $(ARGS)

test: $(VENV)/.installed-dev test-tools
	$(MAKE) --no-print-directory lint typecheck proto unit bench-smoke

# Outside tools some tests use (promtool, prometheus): installed when missing and
# possible, never failing here (the tests skip, or fail in CI; see the script).
test-tools:
	@sh tests/tools/ensure_prometheus.sh

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy lrukv lrukv_server lrukv_client benchmarks tests

proto:
	$(BIN)/python proto/generate.py --check

unit:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-smoke:
	$(BIN)/python benchmarks/run_smoke.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
