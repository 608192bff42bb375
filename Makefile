# oxloop: `make help` lists the commands.
# Every recipe runs under bash with -e -u -o pipefail: a command that fails anywhere in a pipeline
# fails the target, and so `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.deps-stamp

# The CPython versions `make test` and `make dist` cover, each in its own venv (.venv-X.Y) with
# its own cargo target dir (target/py-X.Y), so switching interpreters never rebuilds the others.
# PYTHONS may name the interpreters directly (PYTHONS="/usr/bin/python3.12 ..."); otherwise the
# newest pyenv install of each version is used. A version not found is reported, never hidden.
VERSIONS ?= 3.11 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
find_python = $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1))))
ifdef PYTHONS
  py_version = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  $(foreach p,$(PYTHONS),$(eval PYTHON_$(call py_version,$(p)) := $(p)))
  VERSIONS := $(foreach p,$(PYTHONS),$(call py_version,$(p)))
else
  $(foreach v,$(VERSIONS),$(eval PYTHON_$(v) := $(or $(call find_python,$(v)),$(shell command -v python$(v) 2>/dev/null))))
endif
TOO_OLD := $(filter 2.% 3.0 3.1 3.2 3.3 3.4 3.5 3.6 3.7 3.8 3.9 3.10,$(VERSIONS))
ifneq ($(TOO_OLD),)
  $(error oxloop supports CPython 3.11 and later, not $(TOO_OLD))
endif
FOUND := $(foreach v,$(VERSIONS),$(if $(PYTHON_$(v)),$(v)))
MISSING := $(filter-out $(FOUND),$(VERSIONS))
# asyncio debug mode conformance covers these modules (the whole suite in debug mode costs minutes).
DEBUG_MODULES ?= test_events test_sock_lowlevel test_streams test_server test_sendfile test_ssl test_subprocess test_unix_events test_base_events
# Limit a run while iterating: `make test-3.12 PYTEST_ARGS="-x -k udp" MODULES="test_streams"`.
PYTEST_ARGS ?=
MODULES ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the commands
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) requirements-dev.txt
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv with the build and test tools

.PHONY: build
build: venv ## Build oxloop in release mode into .venv
	$(VENV)/bin/maturin develop --release --quiet

.PHONY: demo
demo: build ## Build, then run the showcase (examples/demo.py)
	$(PY) examples/demo.py

.PHONY: test
test: versions test-rust $(foreach v,$(FOUND),test-$(v)) ## Every test: Rust once, then per Python (3.11+): pytest, debug-mode pytest, conformance
	@echo "test: passed on Python $(FOUND)$(if $(MISSING),; NOT INSTALLED (not tested): Python $(MISSING))"

.PHONY: test-rust
test-rust: ## Rust unit tests of oxloop-core (no Python needed)
	cargo test -p oxloop-core --quiet

.PHONY: test-py
test-py: $(foreach v,$(FOUND),test-py-$(v)) ## Python tests on every Python, normal and in asyncio debug mode

.PHONY: conformance
conformance: $(foreach v,$(FOUND),conformance-$(v)) ## CPython's own test_asyncio with oxloop as the loop, on every Python

.PHONY: versions
versions: ## The interpreters `make test` uses; per version: build-3.X test-3.X test-py-3.X conformance-3.X
	@$(foreach v,$(VERSIONS),echo "  Python $(v): $(or $(PYTHON_$(v)),NOT INSTALLED)";)

# One venv, build, test and conformance target per Python version: test-3.12, build-3.12, ...
define per_version
PY_$(1) := .venv-$(1)/bin/python

.venv-$(1)/.deps-stamp: requirements-dev.txt
	rm -rf .venv-$(1)
	$(PYTHON_$(1)) -m venv .venv-$(1)
	.venv-$(1)/bin/pip install -q --upgrade pip
	.venv-$(1)/bin/pip install -q -r requirements-dev.txt
	touch $$@

.PHONY: build-$(1)
build-$(1): .venv-$(1)/.deps-stamp
	CARGO_TARGET_DIR=target/py-$(1) VIRTUAL_ENV=$(CURDIR)/.venv-$(1) .venv-$(1)/bin/maturin develop --release --quiet

# Two targets, so that with --keep-going a failure in one still lets the other run.
.PHONY: test-py-$(1) pytest-$(1) pytest-debug-$(1)
test-py-$(1): pytest-$(1) pytest-debug-$(1)

pytest-$(1): build-$(1)
	@echo "== Python $(1): pytest"
	$$(PY_$(1)) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests

pytest-debug-$(1): build-$(1)
	@echo "== Python $(1): pytest, asyncio debug mode"
	PYTHONASYNCIODEBUG=1 $$(PY_$(1)) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests

.PHONY: conformance-$(1) conformance-normal-$(1) conformance-debug-$(1)
conformance-$(1): conformance-normal-$(1) conformance-debug-$(1)

conformance-normal-$(1): build-$(1)
	@mkdir -p build
	@echo "== Python $(1): conformance (CPython's test_asyncio on oxloop)"
	$$(PY_$(1)) tests/conformance/run.py --json build/conformance-$(1).json $(MODULES)

conformance-debug-$(1): build-$(1)
	@mkdir -p build
	@echo "== Python $(1): conformance in asyncio debug mode"
	PYTHONASYNCIODEBUG=1 $$(PY_$(1)) tests/conformance/run.py --json build/conformance-$(1)-debug.json \
		$(or $(MODULES),$(DEBUG_MODULES))

.PHONY: test-$(1)
test-$(1): test-py-$(1) conformance-$(1)
endef
$(foreach v,$(FOUND),$(eval $(call per_version,$(v))))

# The peer loops and matplotlib, one package at a time: one that fails to install (rsloop has no
# wheel for every Python) is only a "not installed" column, never a failed `make bench`.
BENCH_STAMP := $(VENV)/.bench-deps-stamp
$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	@: > $(VENV)/bench-pip.log
	@grep -vE '^\s*(#|$$)' benchmarks/requirements.txt | while read -r req; do \
		$(PIP) install -q "$$req" >> $(VENV)/bench-pip.log 2>&1 \
			|| echo "bench: $$req not installed (see $(VENV)/bench-pip.log)"; \
	done
	@$(PY) -c 'import rsloop' 2>/dev/null || $(MAKE) --no-print-directory bench-rsloop
	@command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1) \
		|| echo "bench: wrk not installed (the HTTP row will show an error cell)"
	touch $(BENCH_STAMP)

# rsloop publishes wheels for some Pythons only, and its sdist pins a nightly Rust it may be built
# with. When no wheel installs, build the sdist with the nightly toolchain rustup has (its
# rust-toolchain.toml pin is overridden by RUSTUP_TOOLCHAIN). -Zcrate-attr enables allocator_api,
# which rsloop uses as stable: older nightlies gate it. A failed build leaves the column "not
# installed", with the reason in $(VENV)/rsloop-build.log.
RSLOOP_NIGHTLY ?= nightly
.PHONY: bench-rsloop
bench-rsloop: $(STAMP) ## Build the rsloop peer from its sdist with nightly Rust (make bench does when no wheel fits)
	@if ! rustup toolchain list 2>/dev/null | grep -q '^$(RSLOOP_NIGHTLY)'; then \
		echo "bench: rsloop has no wheel for this Python and no $(RSLOOP_NIGHTLY) Rust toolchain to build it" \
			| tee $(VENV)/rsloop-build.log; \
	else \
		echo "bench: building rsloop from its sdist with $(RSLOOP_NIGHTLY) Rust (a few minutes)"; \
		RUSTUP_TOOLCHAIN=$(RSLOOP_NIGHTLY) RUSTFLAGS="-Zcrate-attr=feature(allocator_api)" \
			$(PIP) install --no-binary rsloop rsloop > $(VENV)/rsloop-build.log 2>&1 \
			|| echo "bench: rsloop did not build (see $(VENV)/rsloop-build.log)"; \
	fi

.PHONY: native-echo
native-echo: ## Build the pure-Rust echo server (the benchmark's native ceiling)
	cargo build --release --quiet --example echo_server -p oxloop-core

# The instruction cost of monitoring mode (callgrind), which the report shows beside the wall clock.
.PHONY: bench-monitor-cost
bench-monitor-cost: build ## Instructions per operation with monitoring off and on (callgrind, a few minutes)
	@mkdir -p benchmarks/results
	@if command -v valgrind >/dev/null; then \
		$(PY) benchmarks/monitor_cost.py --json benchmarks/results/monitor-cost.json; \
	else \
		echo "bench: valgrind not installed: no instruction table for monitoring mode"; \
	fi

.PHONY: bench
bench: build native-echo $(BENCH_STAMP) bench-monitor-cost ## Full side-by-side benchmark, about 15 min on 2 cores (writes benchmarks/README.md)
	$(PY) benchmarks/run.py

.PHONY: bench-quick
bench-quick: build native-echo $(BENCH_STAMP) ## Quick benchmark run, under 2 min (fewer repetitions, less work)
	$(PY) benchmarks/run.py --quick

# Release artefacts: the sdist and one manylinux wheel per Python, linked with zig (the `ziglang`
# package) against an old glibc; then each wheel alone in a fresh venv runs examples/demo.py.
DIST_VENV := .venv-dist
$(DIST_VENV)/.deps-stamp:
	rm -rf $(DIST_VENV)
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/pip install -q --upgrade pip
	$(DIST_VENV)/bin/pip install -q "maturin>=1.5,<2" ziglang
	touch $@

.PHONY: dist
dist: $(DIST_VENV)/.deps-stamp ## sdist + a manylinux wheel per Python into dist/, each checked in a fresh venv
	rm -rf dist
	$(DIST_VENV)/bin/maturin sdist --out dist
	$(foreach v,$(FOUND),PATH=$(CURDIR)/$(DIST_VENV)/bin:$$PATH CARGO_TARGET_DIR=target/dist \
		$(DIST_VENV)/bin/maturin build --release --quiet \
		--zig --compatibility manylinux2014 --interpreter $(PYTHON_$(v)) --out dist;)
	$(foreach v,$(FOUND),$(MAKE) --no-print-directory dist-check-$(v);)
	@ls -1 dist
	@echo "dist: sdist and wheels for Python $(FOUND)$(if $(MISSING),; NOT INSTALLED (no wheel): Python $(MISSING))"

# Installs the wheel of one Python into an empty venv (no index, no other package) and runs the demo
# from a scratch directory, so nothing from the checkout can be imported instead.
dist-check-%:
	@wheel=$$(ls dist/oxloop-*-cp$(subst .,,$*)-cp$(subst .,,$*)-manylinux*.whl); \
	scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	echo "== Python $*: $$wheel in a fresh venv"; \
	$(PYTHON_$*) -m venv "$$scratch/venv"; \
	"$$scratch/venv/bin/pip" install -q --no-index --no-deps "$$wheel"; \
	cd "$$scratch" && "$$scratch/venv/bin/python" $(CURDIR)/examples/demo.py > demo.out; \
	tail -n 3 demo.out

# Not part of `make test`: each suite gets its own venv and runs twice (asyncio's loop, oxloop).
SUITES ?=
ARGS ?=
.PHONY: ecosystem
ecosystem: venv ## Real libraries' own test suites on asyncio and oxloop (SUITES="uvicorn anyio", ARGS= test paths instead of the whole suite); writes docs/ecosystem.md
	nice -n 10 $(PY) ecosystem/run.py $(if $(SUITES),--suites $(SUITES)) -- $(ARGS)

.PHONY: lint
lint: build ## cargo fmt --check, clippy -D warnings, ruff, stubtest of the extension's stubs, mypy of the package stubs per Python
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks examples ecosystem
	$(VENV)/bin/ruff format --check python tests benchmarks examples ecosystem
	$(PY) -m mypy.stubtest oxloop._oxloop
	$(foreach v,3.11 3.12 3.13 3.14 3.15,$(PY) -m mypy --platform linux --python-version $(v) python/oxloop/__init__.pyi &&) true

.PHONY: format
format: venv ## Format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benchmarks examples ecosystem

.PHONY: clean
clean: ## Remove build outputs and every venv
	cargo clean
	rm -rf $(VENV) .venv-* build dist
