# sertest: two commands do everything on a fresh machine.
#   make audit   set up .venv, audit the reference model(s) on the bundled corpus -> reports/
#   make test    set up .venv with the dev extras, run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch must come from the local CPU wheel before anything that depends on it.
TORCH := torch==2.13.0
PYTEST_ARGS ?= -n 2
AUDIT_OUT ?= reports/bundled-corpus
AUDIT_SUITE ?= quick
AUDIT_MODELS ?= $(if $(wildcard examples/models/wav2small.onnx),--model examples/models/wav2small.onnx,--model random:gaussian --model random:categorical)

.PHONY: help venv system-deps test audit corpus models bench clean lint

help:
	@echo "make audit  - audit on the bundled corpus, reports in $(AUDIT_OUT)"
	@echo "make test   - run the whole test suite"
	@echo "make corpus - regenerate the bundled corpus (needs espeak-ng, flite)"
	@echo "make models - retrain the reference models (about 30 min on 2 cores)"
	@echo "make bench  - performance benchmarks"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Core install (no torch): what ONNX users get.
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Everything the tests need, torch first.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev,torch,hf,dask]'
	touch $@

venv: $(VENV)/.dev

system-deps:
	bash scripts/system-deps.sh

test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

audit: $(VENV)/.core
	$(BIN)/sertest run $(AUDIT_MODELS) --suite $(AUDIT_SUITE) --out $(AUDIT_OUT) --no-progress \
		|| [ $$? -eq 1 ]
	@echo "results: $(AUDIT_OUT)/results.json"

bench: $(VENV)/.dev
	$(BIN)/pip install -q audinterface
	$(BIN)/python benchmarks/bench.py --out benchmarks/results.json

corpus: $(VENV)/.dev system-deps
	$(BIN)/python scripts/make_corpus.py --out sertest/data/corpus

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache sertest-results
