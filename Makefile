# The two set-up commands of the README. Both create .venv from the pinned requirements on
# first use (torch first, alone, so pip never pulls a CUDA build) and are quick afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_DISABLE_PROGRESS_BARS := 1

.PHONY: demo test venv lint clean-results bench

demo: $(STAMP)  ## install, then run the whole DAG on the bundled demo corpus, with its shortcuts
	$(BIN)/snakemake --profile profiles/local --configfile config.yaml configs/demo.yaml

test: $(STAMP)  ## install, then run the test suite
	$(BIN)/pytest

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m lib.media.feature_kernels  # compile the numba feature kernel into its cache
	touch $(STAMP)

lint: $(STAMP)  ## snakemake --lint, snakefmt --check and black --check lib/
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/black --check lib

bench: $(STAMP)  ## every benchmark (median of >= 3 runs each) -> docs/BENCHMARKS.md
	$(BIN)/python benchmarks/run_all.py

clean-results:  ## remove everything the demo wrote (keeps .venv)
	rm -rf results logs data .snakemake
