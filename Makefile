# Every target bootstraps .venv itself, so a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SOAK_MINUTES ?= 60
TEST_WORKERS ?= 3
# The server and database `make demo-postgres` uses (it makes a schema filedrop_demo there);
# `make bench` and `make torture` make and drop schemas of their own there.
POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
CHECK_PYTHON = $(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'

.DEFAULT_GOAL := help
.PHONY: help install install-runtime browser demo demo-postgres test test-fast lint bench bench-quick torture soak run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the daemon with its dev tools

install-runtime: ## for servers: .venv with the daemon and its runtime dependencies only, no dev tools
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Built into a wheel and installed as a copy, not linked to this tree: a `git pull`
	# changes nothing until `make install-runtime` runs again.
	$(PY) -m pip install --quiet .
	rm -f $(STAMP)  # not the developer's install: `make install` (or test) makes that again

browser: ## Debian's chromium and chromedriver for the browser tests (apt-get; needs root)
	bash tools/install-browser.sh

demo: $(STAMP) ## the three-run scenario (day 1, day 1 again, day 2) with a real daemon
	$(PY) -m tools.demo

demo-postgres: $(STAMP) ## the same scenario on PostgreSQL (POSTGRES_URL=...), two daemons sharing the inbox
	$(PY) -m tools.demo_postgres '$(POSTGRES_URL)'

test: $(STAMP) ## run the test suite on TEST_WORKERS (3) workers (installs the headless browser first when run as root)
	bash tools/install-browser.sh --optional
	# Each test file on one worker (its module fixtures built once); each PostgreSQL test
	# has a schema of its own, so the workers share the server's database. Three workers
	# on two cores: most of the suite's time is spent waiting on daemons, not computing.
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP) ## the inner loop: the tests that start no daemon or other slow process and wait out no timer
	$(PY) -m pytest -m "not slow" -q

lint: $(STAMP) ## ruff and mypy --strict
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(STAMP) ## the benchmark suite at the targets' sizes (minutes); writes tools/bench/results.json
	$(PY) -m tools.bench --full --postgres '$(POSTGRES_URL)'

bench-quick: $(STAMP) ## the same suite at small sizes (about a minute): a smoke test, not judged
	$(PY) -m tools.bench --postgres '$(POSTGRES_URL)'

torture: $(STAMP) ## kill -9 at each crash point and at random (SQLite, and PostgreSQL at POSTGRES_URL), a 10,000-file burst (minutes)
	$(PY) -m tools.torture --full --postgres '$(POSTGRES_URL)'

soak: $(STAMP) ## SOAK_MINUTES (60) of steady drops into a real daemon: RSS and fds flat? writes soak.json
	$(PY) -m tools.soak --minutes $(SOAK_MINUTES) --out soak.json

run: $(STAMP) ## run the daemon in the foreground with config/etl.toml
	$(PY) -m filedrop_etl

clean: ## remove runtime data (databases, archives, demo output); keeps .venv
	rm -rf .demo .demo-postgres processed failed .inbox.work etl.db etl.db-wal etl.db-shm etl.db.lock
