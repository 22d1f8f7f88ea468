# One entry point for people and CI. Each target installs what it needs on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.deps-stamp
NODE_STAMP := node_modules/.deps-stamp

.PHONY: test test-unit test-integration test-infra test-image test-browser demo lint format bench lock system-deps clean

## make test — create the virtualenv, install everything pinned, lint, run the whole suite
## in TEST_WORKERS processes (pytest-xdist), each taking whole test files, so a module's fixtures (a CDK CLI synth, a
## server) are made once; most tests wait on servers and subprocesses, so two workers share two cores well
TEST_WORKERS ?= 2
test: $(STAMP) system-deps $(NODE_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## make test-<tier> — one tier (tests/conftest.py gives every test exactly one); pytest exits 5, and make fails,
## when a tier selects no test
test-unit: $(STAMP)
	$(PY) -m pytest -m unit

test-integration: $(STAMP) system-deps
	$(PY) -m pytest -m integration

test-infra: $(STAMP) system-deps $(NODE_STAMP)
	$(PY) -m pytest -m infra

test-image: $(STAMP)
	$(PY) -m pytest -m image

test-browser: $(STAMP) system-deps
	$(PY) -m pytest -m browser

## make demo — the local end-to-end explanation run on the built-in corpus (no AWS account)
demo: $(STAMP)
	$(VENV)/bin/textexplain demo

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

## make bench — every benchmark, printing tables (on demand, never in CI)
bench: $(STAMP)
	$(VENV)/bin/pip install -q -r requirements-bench.txt -c constraints.txt
	$(PY) -m bench

## make lock — regenerate constraints.txt (transitive pins) from the pinned top-level files
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip==26.3
	.venv-lock/bin/python -m pip install -q -r requirements-dev.txt
	.venv-lock/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort > constraints.txt
	rm -rf .venv-lock

system-deps:
	bash scripts/ensure-system-packages.sh

# the CDK CLI (the documented `npx aws-cdk@2` commands) and CDK's template diff engine, pinned in package-lock.json
$(NODE_STAMP): package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache
