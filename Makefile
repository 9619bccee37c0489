# Conduit: `make run` starts the server; `make test` runs everything CI runs.
VENV        ?= .venv
PYTHON      ?= python3
BIN         := $(VENV)/bin
INSTALLED   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run install test test-sqlite test-postgres lint fmt bench clean

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	@$(BIN)/conduit migrate
	@$(BIN)/conduit serve

lint: $(INSTALLED)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy src

test: lint test-sqlite test-postgres

test-sqlite: $(INSTALLED)
	CONDUIT_TEST_DATABASE=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(INSTALLED)
	CONDUIT_TEST_DATABASE_URL="$$(scripts/postgres.sh start)" $(BIN)/pytest $(PYTEST_ARGS)

fmt: $(INSTALLED)
	$(BIN)/ruff check --fix src tests $(wildcard bench)
	$(BIN)/ruff format src tests $(wildcard bench)

bench: $(INSTALLED)
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
