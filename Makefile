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

.PHONY: help venv system-deps test audit corpus models models-robust reports bench bench-gpu bench-scale clean lint validity

REF := examples/models
REF_MODELS := --model teacher=$(REF)/teacher --model wav2small=$(REF)/wav2small.onnx \
	--model wav2small-int8=$(REF)/wav2small-int8.onnx --model mobilenetv4=$(REF)/mobilenetv4.onnx \
	--model mobilenetv3=$(REF)/mobilenetv3.onnx

help:
	@echo "make audit  - audit on the bundled corpus, reports in $(AUDIT_OUT)"
	@echo "make test   - run the whole test suite"
	@echo "make corpus - regenerate the bundled corpus (needs espeak-ng, flite)"
	@echo "make models - retrain the reference models (about 30 min on 2 cores)"
	@echo "make bench  - performance benchmarks"
	@echo "make validity - how often the default suite catches planted defects -> docs/validity.md"

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

# GPU benchmark (not in CI): a wav2vec2-large-sized random model, audit vs pure inference.
# BENCH_GPU_ARGS="--size tiny --device cpu" runs the same path on a CPU in about a minute.
BENCH_GPU_ARGS ?= --size large --device cuda
bench-gpu: $(VENV)/.dev
	$(BIN)/python benchmarks/gpu_bench.py $(BENCH_GPU_ARGS) --out benchmarks/gpu_results.json

bench: $(VENV)/.dev
	$(BIN)/pip install -q audinterface
	$(BIN)/python benchmarks/bench.py --out benchmarks/results.json

# Scale-out (not in CI): BENCH_SCALE_K x the bundled corpus with the quick suite on a Dask
# LocalCluster of 2 worker processes against 1 x -> benchmarks/scale.json (about 2 CPU-minutes
# per copy of the corpus; make bench prints the last figures beside its own).
BENCH_SCALE_K ?= 20
bench-scale: $(VENV)/.dev
	nice -n 10 $(BIN)/python benchmarks/scale.py --k $(BENCH_SCALE_K) --out benchmarks/scale.json

# Retrain the reference models in examples/models (about 30 min on 2 cores), then the
# robust student (models-robust).
models: $(VENV)/.dev
	nice -n 10 $(BIN)/python examples/distill/distill.py all
	$(MAKE) models-robust

# Wav2Small-robust (+ int8): distilled from the teacher in examples/models on perturbed
# audio, disjoint from the default suite's conditions; three target variants (perturbed,
# clean, and consistent: perturbed fine-tuned on clean/perturbed pairs), the consistent one
# exported (not timed as a whole: its steps, timed separately on 2 shared cores, add up to
# about 60 min wall - rendering 126 s, labels 132 s, training 1462 + 1483 + 449 s); the other
# models are not touched.  See examples/distill/robust.py, reports/robust-students/.
models-robust: $(VENV)/.dev
	nice -n 10 $(BIN)/python examples/distill/distill.py robust

# Published example audits of the reference models as one static site (sertest publish):
# reports/index.html (leaderboard), reports/audits/NAME/ (report, results, summary) and the
# comparison of the two quick audits of the bundled corpus; see reports/README.md.  The audit
# folders are written to $(REPORT_AUDITS) (under build/, not kept).  The exploratory audit
# (metamorphic expectations, slice discovery, worst-case search) adds about 1 min with a warm
# prediction cache, about 5 min cold (2 shared cores).
REPORT_AUDITS ?= build/report-audits
reports: $(VENV)/.dev
	$(BIN)/sertest run --model wav2small=$(REF)/wav2small.onnx --suite default \
		--out $(REPORT_AUDITS)/default-wav2small --no-progress || [ $$? -eq 1 ]
	$(BIN)/sertest run $(REF_MODELS) --suite quick --out $(REPORT_AUDITS)/quick-reference-models \
		--no-progress || [ $$? -eq 1 ]
	$(BIN)/sertest run --model wav2small-int8=$(REF)/wav2small-int8.onnx --suite quick \
		--out $(REPORT_AUDITS)/quick-wav2small-int8 --no-progress || [ $$? -eq 1 ]
	$(BIN)/sertest run --model wav2small=$(REF)/wav2small.onnx --model mobilenetv4=$(REF)/mobilenetv4.onnx \
		--reference teacher=$(REF)/teacher --data sertest/data/corpus/real --suite quick \
		--out $(REPORT_AUDITS)/label-free-real-speech --no-progress || [ $$? -eq 1 ]
	$(BIN)/sertest run --model wav2small=$(REF)/wav2small.onnx --model mobilenetv4=$(REF)/mobilenetv4.onnx \
		--suite exploratory --out $(REPORT_AUDITS)/exploratory-reference-models \
		--no-progress || [ $$? -eq 1 ]
	$(BIN)/sertest publish $(REPORT_AUDITS)/quick-reference-models $(REPORT_AUDITS)/quick-wav2small-int8 \
		$(REPORT_AUDITS)/default-wav2small $(REPORT_AUDITS)/label-free-real-speech \
		$(REPORT_AUDITS)/exploratory-reference-models --out reports
	$(BIN)/python -m pytest tests/test_site.py -q -k published

# Self-validation of the default suite (sertest validate): planted defects on the oracle's
# predictions (truth + noise; Wav2Small supplies the planning and features), judged on 20
# speaker resamples of the bundled corpus -> docs/validity.{md,json} (about 15 min on 2 cores).
# VALIDITY_WORKERS processes judge resamples at once (the table does not depend on it);
# VALIDITY_ARGS="" plants on Wav2Small's own predictions and runs every magnitude.
VALIDITY_RESAMPLES ?= 20
VALIDITY_WORKERS ?= 2
VALIDITY_OUT ?= docs
VALIDITY_ARGS ?= --carrier oracle --quick
validity: $(VENV)/.core
	$(BIN)/sertest validate --model wav2small=$(REF)/wav2small.onnx --suite default \
		--resamples $(VALIDITY_RESAMPLES) --workers $(VALIDITY_WORKERS) --out $(VALIDITY_OUT) \
		$(VALIDITY_ARGS)
	cp $(VALIDITY_OUT)/validity-summary.json sertest/validity/default.json

corpus: $(VENV)/.dev system-deps
	$(BIN)/python scripts/make_corpus.py --out sertest/data/corpus

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache sertest-results
