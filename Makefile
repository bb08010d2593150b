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

.PHONY: help env report reproduce check-report test lint format run lab bench clean clean-cache
help:
	@echo "make report   re-execute the stale notebooks into reports/ from the stored runs, build the site, update README"
	@echo "make test     lint + unit tests + every notebook with small parameters + nbval"
	@echo "make check-report  is the committed report stale? which inputs changed?"
	@echo "make reproduce     every run trained again into reproduce/; which numbers came out the same?"
	@echo "make format   ruff's formatter over the code and the notebooks"
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

# Which notebooks are stale is decided in Python from the inputs each one recorded (reports/NAME.inputs.json:
# hashes of the notebook, the package, the data, the run records it read; package versions), never from
# file times; each stale notebook runs with the reason printed, then the site is built and the run store pruned.
report: | $(STAMP)
	$(BIN)/python -m mnist_report report $(TIMEOUT_ARG)

# Every run trained again into a scratch store (reproduce/runs), every notebook executed on them into reproduce/
# (never reports/); then every number of the committed metrics against the reproduced one (reproduce/reproduce.md).
# RESUME=1: keep the runs an interrupted `make reproduce` trained (reproduce/runs), train the rest.
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

format: $(STAMP)
	$(BIN)/ruff format .

NB ?= 01-seed-reproduction
OUT ?= reports/custom
PARAMS ?=
# Runs with other parameters go to the local cache (~/.cache/mnist-report), never into reports/runs.
run: $(STAMP)
	$(BIN)/python -m mnist_report notebook notebooks/$(NB).ipynb $(OUT)/$(NB).ipynb $(TIMEOUT_ARG) \
	    -p output_dir $(OUT) $(PARAMS)

# Speed against the PyTorch reference; BENCH_ARGS="--epochs 2 --impls keras-float32,torch" to narrow it.
BENCH_ARGS ?=
bench: $(STAMP)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

# Kernels over Unix sockets (as notebooks.IPCKernelManager does for make report), not TCP on localhost:
# no port for other users, no "Kernel is running over TCP without encryption" warning.
lab: $(STAMP)
	$(BIN)/jupyter lab --KernelManager.transport=ipc notebooks/

clean:
	rm -rf runs reproduce reports/custom reports/interactive reports/.*.partial.* reports/.*.staging reports/*.failed.ipynb

# The local cache (runs with other parameters than the report's, backups of runs in training, locks) lives
# outside the checkout; the report's own runs are in reports/runs and stay.
clean-cache:
	rm -rf ~/.cache/mnist-report
