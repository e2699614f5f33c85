# Two commands for a new user: `make demo` (set up, then run the site and a worker with demo data)
# and `make test` (set up, then lint and run the test suite).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
PYTEST_ARGS ?= -m "not slow"
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup venv system services db demo test test-all lint serve worker clean

venv: .venv/.installed
.venv/.installed: requirements/web.txt requirements/ml.txt requirements/dev.txt
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements/dev.txt
	touch $@

system:
	bash scripts/system_deps.sh

services:
	bash scripts/ensure_services.sh

.env:
	$(PY) scripts/make_env.py > .env

db: venv services .env
	$(PY) manage.py create_database
	$(PY) manage.py migrate --noinput -v 0

setup: system venv services .env db
	$(PY) manage.py collectstatic --noinput -v 0

demo: setup
	$(PY) manage.py demo_setup
	bash scripts/run_demo.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/lint-imports

test: system venv services
	$(MAKE) lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: PYTEST_ARGS :=
test-all: test

# Load benchmark (prints figures; see bench/README.md). Seeds loupe_bench once if it is missing.
.PHONY: bench-load
bench-load: venv services
	psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'loupe_bench'" | grep -q 1 \
	  || $(PY) -m bench.seed --judgments 1000000
	$(PY) -m bench.annotation_load --annotators 32 --seconds 60 --json

clean:
	rm -rf .venv staticfiles var .pytest_cache .ruff_cache
