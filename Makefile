# Conduit: `make run` starts the server; `make test` runs everything CI runs.
VENV        ?= .venv
PYTHON      ?= python3
BIN         := $(VENV)/bin
INSTALLED   := $(VENV)/.installed
NODE_STAMP  := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: run install test test-sqlite test-postgres lint fmt bench conformance clean system-tools

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

# Real MCP servers and the conformance suite for the tests (package-lock.json pins them, Node 22 included).
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# Debian packages the tests drive for real (swaks, the SMTP client); PostgreSQL comes with
# scripts/postgres.sh. Idempotent: a no-op once installed.
system-tools:
	@scripts/install-swaks.sh

install: $(INSTALLED) $(NODE_STAMP)

run: $(INSTALLED)
	@$(BIN)/conduit migrate
	@$(BIN)/conduit serve

lint: $(INSTALLED)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy src

test: lint test-sqlite test-postgres

test-sqlite: $(INSTALLED) $(NODE_STAMP) system-tools
	CONDUIT_TEST_DATABASE=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(INSTALLED) $(NODE_STAMP) system-tools
	CONDUIT_TEST_DATABASE_URL="$$(scripts/postgres.sh start)" $(BIN)/pytest $(PYTEST_ARGS)

fmt: $(INSTALLED)
	$(BIN)/ruff check --fix src tests $(wildcard bench)
	$(BIN)/ruff format src tests $(wildcard bench)

bench: $(INSTALLED)
	$(BIN)/python bench/api.py && $(BIN)/python bench/gateway.py && $(BIN)/python bench/smtp.py && $(BIN)/python bench/scan.py

# The MCP conformance suite against the fixture server, directly and through Conduit, side by side
# (not part of `make test`; tests/gateway/test_conformance.py asserts the same in the suite).
conformance: $(INSTALLED) $(NODE_STAMP)
	$(BIN)/python -m tests.conformance

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache .mypy_cache
