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

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
EXECUTED := $(NOTEBOOKS:notebooks/%=reports/%)
HTML := $(EXECUTED:.ipynb=.html)
# what the notebooks' results depend on (the benchmark and the README writer do not feed them)
SOURCES := $(filter-out mnist_report/bench.py mnist_report/reference_torch.py mnist_report/readme.py, \
             $(wildcard mnist_report/*.py)) $(wildcard data/mnist/*) pyproject.toml
# seconds a single cell may run before papermill gives up
TIMEOUT ?= 7200

.PHONY: help env report check-report test lint run lab bench clean
help:
	@echo "make report   execute every notebook into reports/ (ipynb, html, figures, metrics) and update README"
	@echo "make test     lint + unit tests + every notebook with small parameters + nbval"
	@echo "make check-report  is the committed report stale? which inputs changed?"
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

report: $(HTML) README.md

# Executed into a temporary file; only a notebook that ran to the end replaces the previous one.
# The environment is an order-only prerequisite: creating it does not make a report stale, a change to
# pyproject.toml (in SOURCES) does.
reports/%.ipynb: notebooks/%.ipynb $(SOURCES) | $(STAMP)
	@echo "== executing $< (one log line per epoch follows)"
	$(BIN)/python -m mnist_report notebook $< $@ --timeout $(TIMEOUT)

reports/%.html: reports/%.ipynb
	$(BIN)/jupyter nbconvert --log-level WARN --to html --stdout $< > reports/.$*.partial.html
	@mv -f reports/.$*.partial.html $@

# Whether the committed report still matches the working tree (reports/NAME.inputs.json), and why not.
check-report: $(STAMP)
	$(BIN)/python -m mnist_report check-report

README.md: $(EXECUTED)
	$(BIN)/python -m mnist_report readme

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

NB ?= 01-seed-reproduction
OUT ?= reports/custom
PARAMS ?=
# A notebook that saves its model (it has a run_dir parameter) saves it under runs/custom/, so that
# the committed report's model is left alone; cached runs (cache_dir) are keyed by their settings.
RUN_DIR_PARAM = $(if $(shell grep -l '"run_dir = ' notebooks/$(NB).ipynb 2>/dev/null),-p run_dir runs/custom/$(NB))
run: $(STAMP)
	$(BIN)/python -m mnist_report notebook notebooks/$(NB).ipynb $(OUT)/$(NB).ipynb --timeout $(TIMEOUT) \
	    -p output_dir $(OUT) $(RUN_DIR_PARAM) $(PARAMS)

# Speed against the PyTorch reference; BENCH_ARGS="--epochs 2 --impls keras-float32,torch" to narrow it.
BENCH_ARGS ?=
bench: $(STAMP)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m mnist_report.bench $(BENCH_ARGS)
	$(BIN)/python -m mnist_report readme

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf runs reports/custom reports/.*.partial.* reports/.*.staging reports/*.failed.ipynb
