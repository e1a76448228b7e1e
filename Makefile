# Every developer action is one target; CI runs `make test` (.ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install demo test check bench serve clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## Build .venv and install Pertinent with its dev tools (idempotent).

demo: install ## Run the whole Personalize loop on generated data and print recommendations.
	$(BIN)/pertinent demo

test: install ## Run every test.
	$(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

check: install ## ruff + mypy --strict.
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: install ## Run the benchmarks; figures print and land in bench/results/.
	$(BIN)/python bench/import.py
	$(BIN)/python bench/serve.py

serve: install ## Start a server on 127.0.0.1:8000 with data in ./pertinent-data.
	$(BIN)/pertinent serve

clean: ## Remove the virtual environment and caches.
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
