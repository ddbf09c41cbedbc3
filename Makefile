# Quick start: `make run` serves the clock, `make test` runs every check.
# Both build their own virtualenv from the hash-pinned lock files.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

RUN_VENV := .venv
TEST_VENV := .venv-test
# ESLint for the page's scripts, installed from package-lock.json by `npm ci`.
NODE_TOOLS := node_modules/.installed
FIND_PYTHON := scripts/find-python
# The podman kit's environment (../shared/containers), when it is set up here.
CONTAINERS_ENV ?= /var/tmp/mc-containers/env
WITH_CONTAINERS := if [ -f $(CONTAINERS_ENV) ]; then . $(CONTAINERS_ENV); fi;
PIP_COMPILE_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

# Translations: sources in moscow_clock/translations/<lang>/LC_MESSAGES/messages.po,
# compiled .mo files are build output (not committed): `make run`, `make test`
# and the image builds compile them.
TRANSLATIONS := moscow_clock/translations
COMPILE_TRANSLATIONS = $(1)/bin/pybabel -q compile --domain messages --directory $(TRANSLATIONS)

.PHONY: help run check lint js test translations image image-distroless screenshot icons bench bench-accuracy bench-soak bench-soak-hostile bench-churn audit lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: $(RUN_VENV)/.installed ## serve the clock on http://127.0.0.1:8000 (HOST, PORT, ... override)
	$(call COMPILE_TRANSLATIONS,$(RUN_VENV))
	$(RUN_VENV)/bin/python -m moscow_clock

# The fast tier, for the edit loop: lint, types, and the tests that start no
# server, browser or container (unit, app and property tests).
# They share nothing, so they run on two cores (pytest-xdist); the slow tiers
# run one at a time, as servers under load must not share the machine.
FAST_TESTS := -m "not server and not browser and not image" -n 2

lint: $(TEST_VENV)/.installed ## ruff (lint and format) and mypy --strict
	$(TEST_VENV)/bin/ruff check --no-cache .
	$(TEST_VENV)/bin/ruff format --no-cache --check .
	$(TEST_VENV)/bin/mypy --no-incremental --cache-dir=/dev/null

js: $(NODE_TOOLS) ## the page's scripts: ESLint (static/, templates/sw.js) and their unit tests (node --test)
	node_modules/.bin/eslint --max-warnings 0 static templates/sw.js tests/js bench eslint.config.js
	node --test --test-reporter=dot tests/js/

check: lint js ## the fast tier: lint, types, unit and property tests (seconds, not minutes)
	$(call COMPILE_TRANSLATIONS,$(TEST_VENV))
	PYTHONDONTWRITEBYTECODE=1 $(TEST_VENV)/bin/python -m pytest $(FAST_TESTS) $(PYTEST_ARGS)

test: lint js ## everything: lint, types and the whole test suite (servers, Chromium, images)
	$(call COMPILE_TRANSLATIONS,$(TEST_VENV))
	scripts/ensure-browser $(TEST_VENV)
	scripts/ensure-chrony
	scripts/ensure-containers
	$(WITH_CONTAINERS) PYTHONDONTWRITEBYTECODE=1 $(TEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

translations: $(TEST_VENV)/.installed ## extract the page's strings, update every catalogue, compile them
	$(TEST_VENV)/bin/pybabel -q extract --mapping-file babel.cfg --no-location --sort-output \
		--project moscow_clock --msgid-bugs-address "" --copyright-holder "" \
		--output-file $(TRANSLATIONS)/messages.pot .
	$(TEST_VENV)/bin/pybabel -q update --domain messages --input-file $(TRANSLATIONS)/messages.pot \
		--output-dir $(TRANSLATIONS) --no-fuzzy-matching --ignore-obsolete
	$(call COMPILE_TRANSLATIONS,$(TEST_VENV))

image: ## build the slim image as moscow-clock:slim (Docker, or podman with the local stand-ins)
	$(WITH_CONTAINERS) scripts/build-image slim moscow-clock:slim

image-distroless: ## build the distroless image as moscow-clock:distroless
	$(WITH_CONTAINERS) scripts/build-image distroless moscow-clock:distroless

screenshot: $(TEST_VENV)/.installed ## render light, dark, kiosk, Russian and embed screenshots to docs/screenshot*.png
	$(call COMPILE_TRANSLATIONS,$(TEST_VENV))
	scripts/ensure-browser $(TEST_VENV)
	$(TEST_VENV)/bin/python -m tests.support.screenshot docs/screenshot.png

icons: $(TEST_VENV)/.installed ## render the app icons (static/icons/*.png) from static/favicon.svg in Chromium
	scripts/ensure-browser $(TEST_VENV)
	$(TEST_VENV)/bin/python -m tests.support.icons static/icons

bench: $(TEST_VENV)/.installed ## clients per process: lateness, memory, CPU vs the naive loop (docs/PERFORMANCE.md)
	$(TEST_VENV)/bin/python -m bench.run --json bench/results.json $(BENCH_ARGS)
	$(TEST_VENV)/bin/python -m bench.plot bench/results.json docs/performance.png

bench-soak: $(TEST_VENV)/.installed ## thousands of clients for 10 minutes, joining and leaving: is memory flat?
	$(TEST_VENV)/bin/python -m bench.soak $(BENCH_ARGS)

bench-soak-hostile: $(TEST_VENV)/.installed ## 30 minutes of clients plus impolite churn (404s, 400s, resets, vanished): is RSS flat?
	$(TEST_VENV)/bin/python -m bench.soak --hostile-mix --clients 1000 --churn 10 --minutes 30 --every 60 $(BENCH_ARGS)

bench-churn: $(TEST_VENV)/.installed ## RSS per 1,000 events of each kind of churn (BENCH_ARGS="--checkout main=PATH" to compare)
	taskset -c 1 $(TEST_VENV)/bin/python -m bench.churn $(BENCH_ARGS)

bench-accuracy: $(TEST_VENV)/.installed ## measure how close to the true second the page flips
	scripts/ensure-browser $(TEST_VENV)
	$(TEST_VENV)/bin/python -m bench.flip_accuracy $(BENCH_ARGS)

audit: $(TEST_VENV)/.installed ## check the locked requirements for known vulnerabilities (needs PyPI's JSON API)
	$(TEST_VENV)/bin/pip-audit --strict --require-hashes --disable-pip --progress-spinner off \
		-r requirements.txt
	$(TEST_VENV)/bin/pip-audit --strict --require-hashes --disable-pip --progress-spinner off \
		-r requirements-dev.txt

lock: $(TEST_VENV)/.installed ## re-pin requirements.txt and requirements-dev.txt from the .in files
	CUSTOM_COMPILE_COMMAND="make lock" $(TEST_VENV)/bin/pip-compile $(PIP_COMPILE_FLAGS) \
		--output-file requirements.txt requirements.in
	CUSTOM_COMPILE_COMMAND="make lock" $(TEST_VENV)/bin/pip-compile $(PIP_COMPILE_FLAGS) \
		--output-file requirements-dev.txt requirements-dev.in

clean: ## remove the virtualenvs and node_modules
	rm -rf $(RUN_VENV) $(TEST_VENV) node_modules

# A venv is rebuilt whenever its lock file changes.
$(RUN_VENV)/.installed: requirements.txt $(FIND_PYTHON)
	python=$$($(FIND_PYTHON)) && "$$python" -m venv --clear $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r requirements.txt
	touch $@

$(TEST_VENV)/.installed: requirements-dev.txt $(FIND_PYTHON)
	python=$$($(FIND_PYTHON)) && "$$python" -m venv --clear $(TEST_VENV)
	$(TEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--require-hashes --no-deps -r requirements-dev.txt
	touch $@

# ESLint and its config, exactly as locked (a check that cannot run fails).
$(NODE_TOOLS): package-lock.json scripts/ensure-node
	scripts/ensure-node
	npm ci --no-audit --no-fund --loglevel=error
	touch $@
