# oxloop: `make help` lists the commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.deps-stamp

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
	$(VENV)/bin/maturin develop --release --quiet 2>&1 | grep -v '^\s*$$' | tail -n 3

.PHONY: demo
demo: build ## Build, then run the showcase (examples/demo.py)
	$(PY) examples/demo.py

.PHONY: test
test: test-rust test-py conformance ## Run every test: Rust unit tests, Python tests, conformance

.PHONY: test-rust
test-rust: ## Rust unit tests of oxloop-core (no Python needed)
	cargo test -p oxloop-core --quiet

.PHONY: test-py
test-py: build ## Python tests on oxloop and asyncio's loop, then again in asyncio debug mode
	$(PY) -m pytest -q tests
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest -q -p no:cacheprovider tests

.PHONY: conformance
conformance: build ## CPython's own test_asyncio with oxloop as the loop
	$(PY) tests/conformance/run.py

# The peer loops and matplotlib, one package at a time: one that fails to install (rsloop has no
# wheel for every Python) is only a "not installed" column, never a failed `make bench`.
BENCH_STAMP := $(VENV)/.bench-deps-stamp
$(BENCH_STAMP): $(STAMP) benchmarks/requirements.txt
	@: > $(VENV)/bench-pip.log
	@grep -vE '^\s*(#|$$)' benchmarks/requirements.txt | while read -r req; do \
		$(PIP) install -q "$$req" >> $(VENV)/bench-pip.log 2>&1 \
			|| echo "bench: $$req not installed (see $(VENV)/bench-pip.log)"; \
	done
	@command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1) \
		|| echo "bench: wrk not installed (the HTTP row will show an error cell)"
	touch $(BENCH_STAMP)

.PHONY: native-echo
native-echo: ## Build the pure-Rust echo server (the benchmark's native ceiling)
	cargo build --release --quiet --example echo_server -p oxloop-core

.PHONY: bench
bench: build native-echo $(BENCH_STAMP) ## Full side-by-side benchmark, about 10 min on 2 cores (writes benchmarks/README.md)
	$(PY) benchmarks/run.py

.PHONY: bench-quick
bench-quick: build native-echo $(BENCH_STAMP) ## Quick benchmark run, under 2 min (fewer repetitions, less work)
	$(PY) benchmarks/run.py --quick

# Not part of `make test`: each suite gets its own venv and runs twice (asyncio's loop, oxloop).
SUITES ?=
ARGS ?=
.PHONY: ecosystem
ecosystem: venv ## Real libraries' own test suites on asyncio and oxloop (SUITES="uvicorn anyio", ARGS=pytest args); writes docs/ecosystem.md
	nice -n 10 $(PY) ecosystem/run.py $(if $(SUITES),--suites $(SUITES)) -- $(ARGS)

.PHONY: lint
lint: build ## cargo fmt --check, clippy -D warnings, ruff, stubtest of the extension's stubs
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(VENV)/bin/ruff check python tests benchmarks examples ecosystem
	$(VENV)/bin/ruff format --check python tests benchmarks examples ecosystem
	$(PY) -m mypy.stubtest oxloop._oxloop

.PHONY: format
format: venv ## Format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benchmarks examples ecosystem

.PHONY: clean
clean: ## Remove build outputs and .venv
	cargo clean
	rm -rf $(VENV)
