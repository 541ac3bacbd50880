# pi-jobs: `make run` starts everything, `make test` tests everything. Both set up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JARS := deploy/kafka/libs/.complete

.PHONY: help install test-tools postgresql browser run test test-unit test-deploy test-integration test-e2e lint format bench bench-progress bench-digits bench-load bench-hostile bench-huge bench-billion bench-resume lock replay \
        kafka kafka-cluster api calculator projector downloader clean status restart stop logs soak

# `make` alone: every target with its `## ` line.
.DEFAULT_GOAL := help
help: ## this list
	@echo 'pi-jobs: make <target>  (README.md says more)'
	@awk -F ':.*## ' '/^[a-z][a-z0-9-]*:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(INSTALLED) $(JARS) ## .venv with every package, and the Kafka jars (Maven)

$(INSTALLED): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || \
	  { echo "Python 3.11+ is required: install it (e.g. apt-get install python3) or set PYTHON=..."; exit 1; }
	@command -v java >/dev/null || { echo "Java 17+ is required: apt-get install openjdk-17-jre-headless"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required to fetch Kafka: apt-get install maven"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(JARS): deploy/kafka/pom.xml | $(INSTALLED)
	$(BIN)/python -m deploy.kafka.local_broker fetch

# What only the tests need, from Debian's packages (installed when missing, as root):
# PostgreSQL for the view-store tests, Chromium for the web page's test.
test-tools: postgresql browser ## PostgreSQL and Chromium for the tests (Debian packages)

postgresql: | $(INSTALLED) ## PostgreSQL for the view-store tests
	$(BIN)/python -m deploy.postgres.local_postgres install

browser: ## Chromium and its driver for the web page's test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } || \
	  echo "the web page's browser test needs: apt-get install chromium chromium-driver"

run: install ## the broker and the four services, in the foreground
	$(BIN)/python -m deploy.run

# The state of each part of a running `make run`; start one again; stop it all; its logs.
status: ## each part of `make run`: state, pid, up, restarts, ready
	@$(BIN)/python -m deploy.control status

restart: ## start one part again: make restart PART=calculator
	@$(BIN)/python -m deploy.control restart $(PART)

stop: ## stop `make run` from any terminal; waits until stopped
	@$(BIN)/python -m deploy.control stop

logs: ## follow every part's log, the broker's too (PART=api: one)
	@$(BIN)/python -m deploy.logs $(PART)

test: install test-tools lint ## lint, then every test (unit, integration, e2e)
	$(BIN)/python -m pytest

test-unit: install test-tools ## the unit tests
	$(BIN)/python -m pytest tests/unit

test-deploy: install ## the Dockerfile, compose and Kubernetes files checked against the code
	$(BIN)/python -m pytest tests/deploy

test-integration: install test-tools ## the integration tests (a real broker)
	$(BIN)/python -m pytest tests/integration

test-e2e: install test-tools ## the end-to-end tests (the services as real processes)
	$(BIN)/python -m pytest tests/e2e

lint: install ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check services deploy tests bench client
	$(BIN)/ruff format --check services deploy tests bench client
	$(BIN)/mypy

format: install ## ruff's formatting and fixes
	$(BIN)/ruff format services deploy tests bench client
	$(BIN)/ruff check --fix services deploy tests bench client

# Random-kill soak: make run under clients while a random part is killed with -9 every 2 to
# 10 s; then checks that nothing acknowledged was lost (SOAK_SECONDS, default 300).
soak: install ## make run under clients, parts killed with -9 (SOAK_SECONDS)
	$(BIN)/python -m tests.soak

# Timings, not tests. BENCH_ARGS=--huge adds 100,000,000 decimals to the engine table.
bench: install ## timings, not tests: engine, flow, replay, listing, digits
	$(BIN)/python bench/bench_engine.py $(BENCH_ARGS)
	$(BIN)/python -m bench.bench_progress
	$(BIN)/python -m bench.bench_flow
	$(BIN)/python bench/bench_replay.py
	$(BIN)/python bench/bench_listing.py
	$(BIN)/python -m bench.bench_digits

# /v1/pi answers and searches over 100,000,000 stored decimals (DIGITS=... for another size).
bench-digits: install ## /v1/pi and search timings over stored digits (DIGITS=...)
	$(BIN)/python -m bench.bench_digits $(if $(DIGITS),--digits $(DIGITS))

# The time left a computation shows at 25% and 50%, against the time really left, by size.
bench-progress: install ## how well progress and ETAs hold, over several sizes
	$(BIN)/python -m bench.bench_progress $(BENCH_ARGS)

# pi-jobs under load beside the original app (a Node.js peer), in one table: needs wrk (from
# Debian's packages, installed when missing and running as root) and npm.
bench-load: install ## pi-jobs under load beside the original app (wrk, npm)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } || \
	  { echo "make bench-load needs wrk: apt-get install wrk"; exit 1; }
	@command -v npm >/dev/null || { echo "make bench-load needs Node.js and npm"; exit 1; }
	cd bench/peers/original && npm ci --no-audit --no-fund --silent
	$(BIN)/python -m bench.bench_load $(BENCH_ARGS)

bench-hostile: install ## one hostile client (slowloris, 20,000 idle connections, slow downloads) beside a polite one
	$(BIN)/python -m bench.bench_hostile $(BENCH_ARGS)

bench-resume: install ## kill -9 at 80% of a job then resume, and 2x the digits after N/2, beside from scratch (DIGITS=200000000)
	$(BIN)/python -m bench.bench_resume --digits $(or $(DIGITS),200000000) $(BENCH_ARGS)

bench-huge: install ## a 100,000,000-digit job: time and memory of each service
	$(BIN)/python bench/bench_engine.py --huge
	$(BIN)/python -m bench.bench_flow --huge 100000000

# One job of NUM decimals (default 1,000,000,000: about 30 minutes of both cores and 9 GiB)
# through the real services: each stage's time, each service's peak memory, the digits' SHA-256.
NUM ?= 1000000000
bench-billion: install ## a billion-digit job end to end: time, memory, SHA-256 (NUM=...)
	$(BIN)/python -m bench.bench_billion --num $(NUM)

lock: ## re-pin every dependency after editing pyproject.toml
	$(BIN)/pip install --quiet uv && $(BIN)/uv pip compile pyproject.toml --extra dev \
	  --generate-hashes --quiet -o requirements.lock

replay: install ## rebuild the view from the log while serving, then switch
	$(BIN)/python -m services.projector.replay

kafka: install ## the broker alone, in the foreground
	$(BIN)/python -m deploy.kafka.local_broker run

# Three brokers, a three-voter KRaft quorum. Use it with:
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194 \
#   PI_JOBS_REPLICATION_FACTOR=3 PI_JOBS_MIN_INSYNC_REPLICAS=2 make run
kafka-cluster: install ## three brokers (a KRaft quorum of three), in the foreground
	$(BIN)/python -m deploy.kafka.local_cluster run

api: install ## the api alone, in the foreground
	$(BIN)/python -m services.api

calculator: install ## a calculator alone, in the foreground
	$(BIN)/python -m services.calculator

projector: install ## the projector alone, in the foreground
	$(BIN)/python -m services.projector

downloader: install ## the downloader alone, in the foreground
	$(BIN)/python -m services.downloader

clean: ## remove .venv, the Kafka jars and build files (not var/)
	rm -rf $(VENV) deploy/kafka/libs build *.egg-info
