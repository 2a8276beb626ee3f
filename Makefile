# llmops developer commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint format demo bench lock clean

install: $(STAMP)  ## create .venv and install llmops with pinned dependencies

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[dev]"
	touch $(STAMP)

test: install  ## lint, type-check, then the whole test suite, on every core
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n auto --dist loadgroup

test-fast: install  ## lint, then the unit tests only: no database server, process or browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not integration" -n auto --dist loadgroup

lint: install  ## ruff and mypy only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: install  ## a month of a simulated support app (rollout, incidents, evals, budgets), then the dashboard
	$(BIN)/llmops demo

bench: install  ## benchmarks; figures go in benchmarks/README.md
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/gateway_overhead.py
	$(BIN)/python benchmarks/budget_check.py
	$(BIN)/python benchmarks/otel_overhead.py
	$(BIN)/python benchmarks/server_overhead.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/audit_verify.py --quick
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/mcnemar.py

lock:  ## re-resolve every dependency and rewrite constraints.txt
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet ".[dev]"
	{ echo "# Pinned versions of every dependency, used as a pip constraints file by the Makefile."; \
	  echo "# Regenerate with \`make lock\` after changing dependencies in pyproject.toml."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^llmops'; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
