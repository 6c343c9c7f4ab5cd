# cafe-elt: the commands of ../shared/ARCHITECTURE.md. Everything runs from .venv.
PYTHON ?= python3.11
VENV := .venv
TOOLS_VENV := .venv-tools
BIN := $(VENV)/bin
CAFE := $(BIN)/cafe
# The checks `make test` runs, each named once (typecheck and pytest also run on their own).
MYPY := $(BIN)/mypy
PYTEST = $(BIN)/pytest -n $(PYTEST_WORKERS)

.DEFAULT_GOAL := help
.PHONY: help setup browser run test lint typecheck pytest typecheck-and-pytest test-timings bench down package deploy destroy clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed $(TOOLS_VENV)/.installed browser  ## create .venv and install pinned dependencies

# The docs site and the report are tested in a real headless browser: Debian's chromium
# (Playwright drives it; its own browser download cannot reach its CDN from here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: install it (apt-get install chromium) for the browser tests"; \
	  fi; }

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# checkov pins versions that conflict with dbt's, so it gets a venv of its own.
$(TOOLS_VENV)/.installed: constraints-tools.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(TOOLS_VENV)/bin/python -m pip install --quiet -c constraints-tools.txt checkov
	touch $@

run: setup  ## the whole job on the embedded stack: load generated files, dbt build, docs, report
	$(CAFE) run

# make test's wall time (lint, typecheck and pytest; not setup), read by the benchmark.
TEST_SECONDS := .local/bench/make-test-seconds
# pytest-xdist workers: the machine has 2 cores; each worker runs its own local stack.
PYTEST_WORKERS ?= 2

test: setup  ## every check CI runs (its wall time goes to .local/bench/make-test-seconds)
	@start=$$(date +%s.%N); \
	$(MAKE) --no-print-directory lint typecheck-and-pytest || exit $$?; \
	mkdir -p $(dir $(TEST_SECONDS)); \
	awk -v start="$$start" -v end="$$(date +%s.%N)" 'BEGIN { printf "%.1f\n", end - start }' \
	  > $(TEST_SECONDS); \
	echo "make test: every check passed in $$(cat $(TEST_SECONDS)) s ($(TEST_SECONDS))"

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(MYPY)

# Slow tests included; `.venv/bin/pytest -m "not slow"` is the quick loop.
pytest:
	$(PYTEST)

# make test runs mypy beside pytest, whose workers leave a core idle about a fifth of the
# time (waiting on PostgreSQL, dbt and pip): a cold mypy (a fresh clone) costs 15 s on its
# own. Its report is printed after pytest's; either failing fails the target.
typecheck-and-pytest:
	@report=$$(mktemp); \
	$(MYPY) > "$$report" 2>&1 & mypy_pid=$$!; \
	$(PYTEST); pytest_status=$$?; \
	wait $$mypy_pid; mypy_status=$$?; \
	echo "$(MYPY)"; cat "$$report"; rm -f "$$report"; \
	[ $$pytest_status -eq 0 ] && [ $$mypy_status -eq 0 ]

# The order a fresh clone's pytest hands out test groups in (tests/conftest.py), from the
# group seconds of the last good `make test`.
test-timings:  ## keep the last good run's seconds per test group as a fresh clone's order
	$(BIN)/python -m tests.group_seconds

bench: setup  ## benchmarks as one table: loader vs raw COPY and row-at-a-time, full vs incremental dbt, panels, make test
	$(CAFE) up
	$(BIN)/python -m bench

down:  ## stop the local stack
	@if [ -x $(CAFE) ]; then $(CAFE) down; else echo "nothing to stop (no .venv)"; fi

package: setup  ## build the Lambda artefact and the dbt source zip into build/
	infra/package.sh

deploy: setup  ## deploy to AWS (needs the aws CLI and credentials; see infra/README.md)
	infra/deploy.sh

destroy:  ## remove the AWS deployment (keeps the foundation stack: exports, queues, card key; CAFE_DESTROY_DATA=yes deletes everything)
	infra/destroy.sh

clean: down  ## remove the local stack's data and build output
	rm -rf .local build dbt_project/target dbt_project/logs
