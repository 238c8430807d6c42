# The README's two commands: `make run` (set up + start the app) and `make test`
# (set up + run every test tier). Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APP_STAMP := $(VENV)/.app-installed
DEV_STAMP := $(VENV)/.dev-installed
FAST_STAMP := $(VENV)/.fast-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup setup-dev setup-fast run test test-unit lint bench bench-anchor soak

setup: $(APP_STAMP)

$(APP_STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(APP_STAMP) requirements-dev.txt requirements-dev-nodeps.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-dev-nodeps.txt
	touch $@

## Optional fast CPU engine: llama.cpp via llama-cpp-python, built PORTABLY (AVX2, no
## AVX-512/AMX: runs on any x86-64 since 2013; ~5 min on 2 cores, once: the wheel is kept
## in .cache/wheels/). The app picks it for GGUF models on CPU once it passes a canary.
setup-fast: $(FAST_STAMP)

$(FAST_STAMP): $(APP_STAMP) requirements-fast.txt scripts/install-llama-cpp.sh
	./scripts/install-llama-cpp.sh $(PY)
	touch $@

## Set up, then start the app on http://127.0.0.1:7860 (flags: make run ARGS="--port 8000")
run: setup
	$(PY) app.py $(ARGS)

## Set up (fast engine included, so its tests run too), then run every test tier
test: setup-dev setup-fast
	./scripts/install-chromium.sh
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: setup-dev
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## Benchmark every installed engine: table, bench/results.json, bench/throughput.png
bench: setup-dev setup-fast
	$(PY) -m bench $(ARGS)

## Soak: 30 simulated visitors for 3 minutes on loopback (the app started on a free port);
## checks nothing is left behind; table + bench/soak.json (flags: make soak ARGS="--duration 60")
soak: setup-dev
	$(PY) -m bench.soak --visitors 30 --duration 180 $(ARGS)

## The benchmark's anchor: llama.cpp's own llama-server, built portably (same flags as the
## engine) from the pinned llama-cpp-python sdist into .cache/ (minutes, once); optional
bench-anchor: setup
	PY=$(PY) ./bench/build_llama_server.sh

lint: setup-dev
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
