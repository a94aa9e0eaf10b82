# fanout - run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
CHAOS_ARGS ?=
NODES ?= 1

.PHONY: help install run up down status clean-data test test-unit test-integration test-cluster chaos lint typecheck format schemas bench clean

help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install fanout with its test dependencies

run: $(STAMP) ## the main job: the fanout demo on the embedded default (eager, in-memory)
	$(BIN)/fanout demo

up: ## start Kafka (KRaft) on :9092 and Cassandra on :9042 (idempotent); NODES=3: three of each on 127.0.0.1-3
	FANOUT_NODES=$(NODES) bash scripts/services.sh up

down: ## stop the servers that `make up` started, of either size (by pid)
	bash scripts/services.sh down

status: ## show whether the servers run (one node and the cluster), their pids and memory
	bash scripts/services.sh status

clean-data: ## stop the servers of both sizes and wipe their data (keeps the downloaded jars)
	bash scripts/services.sh clean-data

test: $(STAMP) lint up ## lint, then all tests: unit, contract, integration (real Kafka + Cassandra), then the chaos slice
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

test-cluster: $(STAMP) ## the cluster tests (-m cluster): stop the one-node stack, make up NODES=3, run them
	FANOUT_NODES=1 bash scripts/services.sh down all
	FANOUT_NODES=3 bash scripts/services.sh up
	$(BIN)/python -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

test-unit: $(STAMP) ## the tests that need no server
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

chaos: $(STAMP) up ## the chaos suite at full size: kill storm, server restarts, fuzz, membership, supervisor
	FANOUT_CHAOS_SCALE=full $(BIN)/python -m pytest -m chaos tests/chaos $(CHAOS_ARGS)

lint: $(STAMP) ## ruff, mypy --strict on every Python folder, import-linter (layers point down, no cycles)
	$(BIN)/ruff check fanout agents schemas tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

schemas: $(STAMP) ## regenerate schemas/*.json from the codecs
	$(BIN)/fanout schemas --write

bench: $(STAMP) up ## the benchmark suite on the real broker and node (see benchmarks/README.md)
	$(BIN)/python benchmarks/run.py

clean: ## remove the virtualenv and caches (not the servers' data: see clean-data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
