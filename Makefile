# mnist-report: the project's verbs.  `make report` regenerates the report, `make test` checks it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Kernel "python3" is looked up here first, so papermill, nbval and JupyterLab use this venv's Python
# and never another kernel of the same name in the user's Jupyter directories.
export JUPYTER_PATH := $(CURDIR)/$(VENV)/share/jupyter
export TF_CPP_MIN_LOG_LEVEL := 3

# TIMEOUT=seconds: how long a single cell may run before papermill gives up (default a day:
# notebooks.CELL_TIMEOUT; notebook 03's longest cell takes hours on a 2-core CPU)
TIMEOUT ?=
TIMEOUT_ARG = $(if $(TIMEOUT),--timeout $(TIMEOUT))

.PHONY: help env report reproduce check-report test lint run lab bench clean clean-cache
help:
	@echo "make report   execute the stale notebooks into reports/ (ipynb, html, figures, metrics) and update README"
	@echo "make test     lint + unit tests + every notebook with small parameters + nbval"
	@echo "make check-report  is the committed report stale? which inputs changed?"
	@echo "make reproduce     every notebook again from nothing into reproduce/; which numbers came out the same?"
	@echo "make run NB=01-seed-reproduction PARAMS='-p epochs 5' [OUT=reports/custom]"
	@echo "              one notebook with other parameters, into its own directory"
	@echo "make bench    training speed against a PyTorch reference (installs the [bench] extra)"
	@echo "make lab      JupyterLab with the project's kernel"
	@echo "make env      create .venv (done automatically by the targets above)"

env: $(STAMP)
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.10+ is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mnist-report)" >/dev/null
	touch $@

# Which notebooks are stale is decided in Python from the inputs each one recorded
# (reports/NAME.inputs.json: hashes of the notebook, the modules that feed it, the data, package
# versions), never from file times; each stale notebook runs with the reason printed, in order.
report: | $(STAMP)
	$(BIN)/python -m mnist_report report $(TIMEOUT_ARG)

# Every notebook again, from nothing (an empty run cache of its own), into reproduce/ (never reports/);
# then every number of the committed metrics against the reproduced one (reproduce/reproduce.md).
# RESUME=1: keep the runs an interrupted `make reproduce` trained itself (reproduce/cache), train the rest.
reproduce: | $(STAMP)
	$(BIN)/python -m mnist_report reproduce --out reproduce $(TIMEOUT_ARG) $(if $(filter 1 yes true,$(RESUME)),--resume)

# Whether the committed report still matches the working tree (reports/NAME.inputs.json), and why not.
check-report: $(STAMP)
	$(BIN)/python -m mnist_report check-report

# Tests in parallel (pytest-xdist, one process per core): single-threaded TensorFlow processes side by
# side use the cores better than one. --dist loadscope keeps a module's tests in one process, so each
# notebook (tests/test_notebook_0N.py) is executed once. (loadgroup's xdist_group marks did not group
# anything under pytest 9.2 with pytest-xdist 3.8: every worker executed every notebook.)
# --no-loadscope-reorder: modules go out in tests/conftest.py's order, the longest first.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadscope --no-loadscope-reorder

lint: $(STAMP)
	$(BIN)/ruff check .

NB ?= 01-seed-reproduction
OUT ?= reports/custom
PARAMS ?=
# A notebook that saves its model (it has a run_dir parameter) saves it under runs/custom/, so that
# the committed report's model is left alone; cached runs (cache_dir) are keyed by their settings.
RUN_DIR_PARAM = $(if $(shell grep -l '"run_dir = ' notebooks/$(NB).ipynb 2>/dev/null),-p run_dir runs/custom/$(NB))
run: $(STAMP)
	$(BIN)/python -m mnist_report notebook notebooks/$(NB).ipynb $(OUT)/$(NB).ipynb $(TIMEOUT_ARG) \
	    -p output_dir $(OUT) $(RUN_DIR_PARAM) $(PARAMS)

# Speed against the PyTorch reference; BENCH_ARGS="--epochs 2 --impls keras-float32,torch" to narrow it.
BENCH_ARGS ?=
bench: $(STAMP)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)
	$(BIN)/python -m mnist_report readme

# Kernels over Unix sockets (as notebooks.IPCKernelManager does for make report), not TCP on localhost:
# no port for other users, no "Kernel is running over TCP without encryption" warning.
lab: $(STAMP)
	$(BIN)/jupyter lab --KernelManager.transport=ipc notebooks/

clean:
	rm -rf runs reproduce reports/custom reports/.*.partial.* reports/.*.staging reports/*.failed.ipynb

# The run cache (every trained run, the search's trials) lives outside the checkout, so that it survives
# a fresh clone; this empties it (the next make report trains everything again).
clean-cache:
	rm -rf ~/.cache/mnist-report
