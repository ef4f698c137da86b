# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Both create .venv themselves, installing torch==2.13.0 before the package
# (see ../shared/ENVIRONMENT.md: any other torch spec downloads CUDA builds).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAGAS_DO_NOT_TRACK := true
export TOKENIZERS_PARALLELISM := false

.PHONY: install run dev test lint bench bench-deps bench-memory bench-retrieval bench-index system-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# Debian packages the tests use (PostgreSQL, Chromium, Prometheus and its Pushgateway); installed
# only when missing.
system-deps:
	./scripts/install_system_deps.sh

## Materialize the whole asset graph on the embedded defaults: RAG, fine-tuning, then
## batch inference against `transformers serve` on the promoted model.
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m genai_assets.local_run

## The Dagster UI and daemon (schedules, sensors) on http://127.0.0.1:3000.
## Run from $(DAGSTER_HOME): Dagster warns about a dagster.yaml in the folder it runs in
## that is not DAGSTER_HOME's (the checkout's, which this target copied there).
dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	cd $(DAGSTER_HOME) && $(CURDIR)/$(VENV)/bin/dagster dev -w $(CURDIR)/workspace.yaml \
		--host 127.0.0.1 --port 3000

test: $(STAMP) system-deps
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check genai_assets genai_assets_tests bench
	$(VENV)/bin/ruff format --check genai_assets genai_assets_tests bench

## Issue 9's ingestion benchmark (slow, not a test): our pipeline, a bare encode, LangChain
## and LlamaIndex on python3-doc. Installs the `bench` extra and python3-doc when missing.
## Options: make bench BENCH_ARGS="--limit 20"; peak memory: make bench-memory (10x corpus).
BENCH_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

bench-deps: $(STAMP)
	$(PY) -c "import langchain_qdrant, langchain_classic.indexes, llama_index.core, llama_index.vector_stores.qdrant, llama_index.embeddings.huggingface" 2>/dev/null \
		|| { $(PY) -m pip install -q -e '.[dev,bench]' && $(PY) -m pip check; }
	dpkg -s python3-doc >/dev/null 2>&1 \
		|| { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-doc; }

bench: bench-deps
	$(PY) -m bench.ingestion_benchmark $(BENCH_ARGS)

# Ten replicas of the first 30 files: 10x the chunks of the 1x run, both at one fixed dtype.
BENCH_MEMORY_ARGS ?= --limit 30 --dtype bf16

bench-memory: bench-deps
	$(PY) -m bench.ingestion_benchmark --memory $(BENCH_MEMORY_ARGS)

## Issue 17's retrieval benchmark: hit@5, recall@5, MRR@10, nDCG@10 and query latency of
## ours (dense, hybrid, hybrid + contextual), LangChain and LlamaIndex on python3-doc.
## Options: make bench-retrieval BENCH_ARGS="--chunk-tokens 128 192 254".
bench-retrieval: bench-deps
	$(PY) -m bench.retrieval_benchmark $(BENCH_ARGS)
## Issue 16's index scale bench (slow, not a test): Qdrant Edge vs qdrant-client local mode at
## 100k and 300k points. A quick check: make bench-index INDEX_ARGS="--points 2000 --local-max 2000".
INDEX_ARGS ?=

bench-index: $(STAMP)
	$(PY) -m bench.index_scale $(INDEX_ARGS)

clean:
	rm -rf $(VENV) .dagster_home .pytest_cache
