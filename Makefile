# The two commands in the README: `make demo` and `make test`. Each makes .venv itself with python3.
# Started as root, the daemon runs its edge as an unprivileged user, who must be able to run the venv's
# interpreter: prefer the system's python3 (a pyenv or asdf one under /root is unreadable to others).
PY ?= $(shell for p in /usr/bin/python3 python3; do $$p -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/botctl demo

# The storage-facing tests a second time with every home's tables in PostgreSQL (127.0.0.1:5432; each test
# makes its own database and drops it). tests/test_postgres.py runs in the first pass: it makes its own.
PG_TESTS = tests/test_workspace_cli.py tests/test_audit.py tests/test_audit_filters.py tests/test_knowledge.py tests/test_knowledge_spelling.py \
	tests/test_intents.py tests/test_python_api.py tests/test_secrets_at_rest.py

test: $(STAMP)
	$(BIN)/ruff check src daemon tests bench examples
	$(BIN)/ruff format --check src daemon tests bench examples
	$(BIN)/python -m pytest -q
	BOTCTL_TEST_DATABASE=postgresql $(BIN)/python -m pytest -q $(PG_TESTS)

test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src daemon tests bench examples
	$(BIN)/ruff format --check src daemon tests bench examples

# Every benchmark against its baseline; writes bench/REPORT.md (commit it when the figures move).
bench: $(STAMP)
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
