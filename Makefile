# keyledger: `make run` serves it, `make test` checks it. Both install what they need.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Debian packages the tests and benchmarks need are installed when missing (sudo when not root).
APT    := $(if $(filter 0,$(shell id -u)),,sudo )env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: run test lint typecheck unit install clean bench bench-logs bench-scale system-deps browser-deps mutate

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/keyledger run

lint: $(STAMP)
	$(BIN)/ruff check app workers policies tests bench
	$(BIN)/ruff format --check app workers policies tests bench

# mypy cannot follow the editable install's import hook, so it reads the package
# through symbolic links laid out as the wheel installs it (docs/packaging.md).
typecheck: $(STAMP)
	@rm -rf build/typecheck && mkdir -p build/typecheck/keyledger
	@cp -rs "$(CURDIR)/app/." build/typecheck/keyledger/
	@cp -rs "$(CURDIR)/policies" "$(CURDIR)/workers" build/typecheck/keyledger/
	$(BIN)/mypy

# The end-to-end suite puts a real nginx in front of keyledger (Debian: nginx-light) and
# drives the console in Debian's headless Chromium (Debian: chromium); the example alert
# rules are checked with promtool (Debian: prometheus, which ships it).
system-deps:
	@command -v nginx >/dev/null 2>&1 || command -v /usr/sbin/nginx >/dev/null 2>&1 || { \
	  echo "installing nginx-light (Debian package) for the forward-auth end-to-end test"; \
	  $(APT) update -qq && $(APT) install -y -qq nginx-light \
	  && { service nginx stop >/dev/null 2>&1 || true; }; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the console's browser tests"; \
	  $(APT) update -qq && $(APT) install -y -qq chromium; }
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing prometheus (Debian package) for promtool, which checks the alert rules"; \
	  $(APT) update -qq && $(APT) install -y -qq \
	    --no-install-recommends prometheus \
	  && { service prometheus stop >/dev/null 2>&1 || true; }; }

# axe-core, which the console's browser tests inject into each page, from npm (exact version
# and integrity hash in tests/e2e/npm/package-lock.json), installed under build/npm.
AXE := build/npm/node_modules/axe-core/axe.min.js
$(AXE): tests/e2e/npm/package.json tests/e2e/npm/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing npm (Debian package) for the browser tests' axe-core"; \
	  $(APT) update -qq && $(APT) install -y -qq npm; }
	@mkdir -p build/npm
	cp tests/e2e/npm/package.json tests/e2e/npm/package-lock.json build/npm/
	cd build/npm && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

browser-deps: $(AXE)

test: lint typecheck system-deps browser-deps
	PATH="$(CURDIR)/$(BIN):$$PATH:/usr/sbin" $(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (Debian package)"; $(APT) update -qq && $(APT) install -y -qq wrk; }
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.run

# Page latency of /v1/logs and /v1/events as one account's log grows (docs/design.md).
# make bench-logs SIZES=1000,10000,100000,1000000 for the deep run.
SIZES ?= 1000,10000,100000
bench-logs: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.logs --sizes $(SIZES)

# Redis memory per account, key and event, and changes per second per primary (docs/operators.md,
# "Running at scale"). make bench-scale SCALE_ARGS="--accounts 1000" for more.
SCALE_ARGS ?=
bench-scale: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.scale $(SCALE_ARGS)

# Mutation testing (docs/mutation.md): cosmic-ray over policies/, app/authn/ and
# app/web/forward.py against the unit and integration tests, in copies under build/mutate
# (the working tree is never touched), then a kill-rate table. Slow, so not part of
# `make test`. MUTATE_ARGS="--only throttle", "--survivors" (the last run's survivors
# again, after adding tests) or "--jobs 1".
MUTATE_ARGS ?=
mutate: $(STAMP)
	nice -n 10 $(BIN)/python -m tests.mutation.run $(MUTATE_ARGS)
