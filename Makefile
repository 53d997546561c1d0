# Two entry points: `make demo` (the whole pipeline on the built-in corpus) and `make test` (the layer
# contract in setup.cfg, then the tests).
# Each builds what it needs from nothing: system packages (as root on Debian/Ubuntu), a venv, the package.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME_DEBS := espeak-ng flite libportaudio2
TEST_DEBS := $(RUNTIME_DEBS) chromium slurmctld slurmd slurm-client munge

.PHONY: demo test docs env system-deps test-deps clean

demo: env
	$(BIN)/kws-hpc demo --out demo_out

test: test-deps env
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

docs: env
	$(BIN)/python -m kws_hpc.clidoc > docs/cli.md

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

system-deps:
	@DEBS="$(RUNTIME_DEBS)" bash jobs/system_deps.sh

test-deps:
	@DEBS="$(TEST_DEBS)" bash jobs/system_deps.sh

clean:
	rm -rf $(VENV) demo_out .pytest_cache
