# brats-book: two commands do everything from a fresh clone.
#
#   make book    set up .venv, write the synthetic data, execute the notebooks, build the HTML
#   make test    set up .venv, run the test suite
#   make help    the other targets and the variables
#
# The virtual environment is (re)installed from pyproject.toml with the exact versions of
# constraints.txt whenever either file changes.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON     ?= python3
VENV       ?= .venv
EXTRAS     ?= cpu,book,test
BOOK_CASES ?= 40
SEED       ?= 0
PROFILE    ?= smoke
SYNTH_DIR  := build/data/synthetic
DATA_DIR   ?= $(SYNTH_DIR)
EXECUTED   := build/executed
SITE       := build/site
PYTEST_ARGS ?=
# `make test` runs on this many processes (pytest-xdist, whole modules each), CI's two cores
TEST_WORKERS ?= 2
# notebooks `make book` executes at once, each kernel on its share of the cores: on CI's two
# cores two one-thread kernels train 1.25-1.33 times the samples per second of one two-thread kernel
BOOK_JOBS  ?= 2
# training runs of the chapters (kept by `make clean`: results are never thrown away by a build)
RESULTS    ?= results

BIN          := $(VENV)/bin
VENV_STAMP   := $(VENV)/.installed-from-pyproject
# the data set is rewritten when the number of cases, the seed or the generator changes
SYNTH_STAMP  := build/data/.synthetic-cases$(BOOK_CASES)-seed$(SEED)

# Environment of everything run below: the venv first on PATH (jupyter-book, the kernel),
# readable TensorFlow logs, no interactive matplotlib backend for tests.
export PATH := $(abspath $(BIN)):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))
export TF_CPP_MIN_LOG_LEVEL := 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1
unexport PYTHONHOME

.PHONY: help setup lock data execute html book test test-hosted bench gpu-check clean distclean

help:
	@echo "make book       set-up, synthetic data ($(BOOK_CASES) cases, seed $(SEED)), execute the notebooks, build the HTML"
	@echo "make test       set-up, then pytest over tests/ (all but the hosted-environment tests)"
	@echo "make test-hosted  Colab- and Kaggle-like environments (Python 3.13 / 3.12): the documented install changes nothing, a chapter runs"
	@echo "make setup      create $(VENV) and install -e \".[$(EXTRAS)]\" -c constraints.txt (redone when either changes)"
	@echo "make lock       rewrite constraints.txt from a fresh environment of pyproject.toml's ranges"
	@echo "make data       write the synthetic data set into $(SYNTH_DIR) (skipped when already there)"
	@echo "make execute    execute the notebooks of _toc.yml into $(EXECUTED)/ (only those that changed or failed)"
	@echo "make html       build the HTML book from the executed notebooks"
	@echo "make bench      run the benchmarks by hand (minutes; a quiet machine), reports into benchmarks/results/"
	@echo "make gpu-check  every model at the report's size (float32, mixed precision, XLA) and each chapter's projected full run"
	@echo "make clean      remove build/ (keeps $(VENV));  make distclean also removes $(VENV)"
	@echo
	@echo "variables: BOOK_CASES=$(BOOK_CASES) BOOK_JOBS=$(BOOK_JOBS) SEED=$(SEED) PROFILE=$(PROFILE) DATA_DIR=$(DATA_DIR) PYTHON=$(PYTHON) TEST_WORKERS=$(TEST_WORKERS)"
	@echo "  the real data:  make book DATA_DIR=/path/to/BraTS2020_TrainingData"

# --------------------------------------------------------------------------- set-up

setup: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml constraints.txt
	@echo "== setting up $(VENV) from pyproject.toml and constraints.txt"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# tensorflow-cpu (the cpu extra before) and tensorflow write the same package: never both
	if $(BIN)/python -m pip show -q tensorflow-cpu 2>/dev/null; then $(BIN)/python -m pip uninstall -y tensorflow-cpu tensorflow; fi
	$(BIN)/python -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

# constraints.txt from scratch: the newest versions pyproject.toml's ranges admit, in a fresh venv
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install -e ".[cpu,book,test]"
	{ sed -n '/^#/p' constraints.txt; build/lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^#\|^-e\|^bratslib'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf build/lock-venv

# --------------------------------------------------------------------------- data

data: $(if $(filter $(SYNTH_DIR),$(DATA_DIR)),$(SYNTH_STAMP))

$(SYNTH_STAMP): $(wildcard bratslib/data/synth.py) | $(VENV_STAMP)
	@echo "== writing $(BOOK_CASES) synthetic cases (seed $(SEED)) to $(SYNTH_DIR)"
	rm -rf $(SYNTH_DIR) build/data/.synthetic-*
	$(BIN)/python -m bratslib synth $(SYNTH_DIR) --cases $(BOOK_CASES) --seed $(SEED)
	touch $@

# --------------------------------------------------------------------------- the book

# bratslib.book decides which notebooks need executing (a fingerprint of notebook, parameters,
# bratslib sources and data manifest beside each executed copy), so this step always runs.
# It sets BRATSLIB_BOOK_BUILD=1 (and TF/tqdm hygiene) for the kernels; preprocessed arrays
# are cached under build/cache so that `make clean` removes everything the book wrote.
EXECUTE = BRATSLIB_BOOK_BUILD=1 BRATSLIB_CACHE="$(abspath build/cache)" BRATSLIB_RESULTS="$(abspath $(RESULTS))" $(BIN)/python -m bratslib book execute --root . --out $(EXECUTED) \
	-p data_dir "$(abspath $(DATA_DIR))" -p profile "$(PROFILE)" -p seed $(SEED) \
	--input "$(abspath $(DATA_DIR))/bratslib_synthetic.json" --jobs $(BOOK_JOBS)
BUILD_HTML = $(BIN)/python -m bratslib book build --root . --executed $(EXECUTED) --site $(SITE) --out build

execute: data | $(VENV_STAMP)
	@echo "== executing the notebooks of _toc.yml into $(EXECUTED)/"
	$(EXECUTE)

html: | $(VENV_STAMP)
	@echo "== building the HTML book from $(EXECUTED)/"
	$(BUILD_HTML)

book: data | $(VENV_STAMP)
	@echo "== executing the notebooks of _toc.yml into $(EXECUTED)/"
	$(EXECUTE)
	@echo "== building the HTML book from $(EXECUTED)/"
	$(BUILD_HTML)

# --------------------------------------------------------------------------- tests

test: $(VENV_STAMP)
	@echo "== running the test suite"
	MPLBACKEND=Agg $(BIN)/python -m pytest -m "not hosted" -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# Colab (Python 3.13) and Kaggle (Python 3.12) as tests/hosted/*.txt describe them, built from
# pyenv's interpreters: installing bratslib the documented way changes no preinstalled package
# and a chapter runs (a few minutes; .ci/run runs it after `make test`)
test-hosted: $(VENV_STAMP)
	@echo "== installing bratslib into Colab- and Kaggle-like environments"
	MPLBACKEND=Agg $(BIN)/python -m pytest -m hosted $(PYTEST_ARGS) tests/test_hosted_install.py

# --------------------------------------------------------------------------- benchmarks

# Speed is measured here, by hand, never in the tests.  bench_book reads the timings of the
# last `make book`, so run that first on the same quiet machine.
BENCH_OUT ?= benchmarks/results

bench: $(VENV_STAMP)
	$(BIN)/python benchmarks/bench_data.py --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_train.py --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_quantum.py
	$(BIN)/python benchmarks/bench_book.py --executed $(EXECUTED) --out $(BENCH_OUT)

# One command on a GPU machine (Colab, Kaggle): each model's step at the report's size in float32,
# mixed precision and XLA, and the projected wall time of every chapter's full run.  On a CPU it
# measures float32 only, in a few minutes, and its report says that no GPU was measured.
gpu-check: $(VENV_STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out $(BENCH_OUT)

# --------------------------------------------------------------------------- cleaning

clean:
	rm -rf build _build .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV) *.egg-info
