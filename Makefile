# pi-jobs: `make run` starts everything, `make test` tests everything. Both set up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JARS := deploy/kafka/libs/.complete

.PHONY: install test-tools postgresql browser run test test-unit test-integration test-e2e lint format bench bench-progress bench-load bench-huge lock replay \
        kafka kafka-cluster api calculator projector downloader clean status restart stop soak

install: $(INSTALLED) $(JARS)

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
test-tools: postgresql browser

postgresql: | $(INSTALLED)
	$(BIN)/python -m deploy.postgres.local_postgres install

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } || \
	  echo "the web page's browser test needs: apt-get install chromium chromium-driver"

run: install
	$(BIN)/python -m deploy.run

# The state of each part of a running `make run`; start one again; stop it all.
status:
	@$(BIN)/python -m deploy.control status

restart:
	@$(BIN)/python -m deploy.control restart $(PART)

stop:
	@$(BIN)/python -m deploy.control stop

test: install test-tools lint
	$(BIN)/python -m pytest

test-unit: install test-tools
	$(BIN)/python -m pytest tests/unit

test-integration: install test-tools
	$(BIN)/python -m pytest tests/integration

test-e2e: install test-tools
	$(BIN)/python -m pytest tests/e2e

lint: install
	$(BIN)/ruff check services deploy tests bench client
	$(BIN)/ruff format --check services deploy tests bench client
	$(BIN)/mypy

format: install
	$(BIN)/ruff format services deploy tests bench client
	$(BIN)/ruff check --fix services deploy tests bench client

# Random-kill soak: make run under clients while a random part is killed with -9 every 2 to
# 10 s; then checks that nothing acknowledged was lost (SOAK_SECONDS, default 300).
soak: install
	$(BIN)/python -m tests.soak

# Timings, not tests. BENCH_ARGS=--huge adds 100,000,000 decimals to the engine table.
bench: install
	$(BIN)/python bench/bench_engine.py $(BENCH_ARGS)
	$(BIN)/python -m bench.bench_progress
	$(BIN)/python bench/bench_flow.py
	$(BIN)/python bench/bench_replay.py
	$(BIN)/python bench/bench_listing.py

# The time left a computation shows at 25% and 50%, against the time really left, by size.
bench-progress: install
	$(BIN)/python -m bench.bench_progress $(BENCH_ARGS)

# pi-jobs under load beside the original app (a Node.js peer), in one table: needs wrk (from
# Debian's packages, installed when missing and running as root) and npm.
bench-load: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } || \
	  { echo "make bench-load needs wrk: apt-get install wrk"; exit 1; }
	@command -v npm >/dev/null || { echo "make bench-load needs Node.js and npm"; exit 1; }
	cd bench/peers/original && npm ci --no-audit --no-fund --silent
	$(BIN)/python -m bench.bench_load $(BENCH_ARGS)

# A 100,000,000-digit job end to end: time and peak memory of each service.
bench-huge: install
	$(BIN)/python bench/bench_engine.py --huge
	$(BIN)/python bench/bench_flow.py --huge 100000000

# Re-pin every dependency after changing pyproject.toml.
lock:
	$(BIN)/pip install --quiet uv && $(BIN)/uv pip compile pyproject.toml --extra dev \
	  --generate-hashes --quiet -o requirements.lock

# Rebuild the view from the log while everything keeps running, then switch to it.
replay: install
	$(BIN)/python -m services.projector.replay

kafka: install
	$(BIN)/python -m deploy.kafka.local_broker run

# Three brokers, a three-voter KRaft quorum. Use it with:
#   KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194 \
#   PI_JOBS_REPLICATION_FACTOR=3 PI_JOBS_MIN_INSYNC_REPLICAS=2 make run
kafka-cluster: install
	$(BIN)/python -m deploy.kafka.local_cluster run

api: install
	$(BIN)/python -m services.api

calculator: install
	$(BIN)/python -m services.calculator

projector: install
	$(BIN)/python -m services.projector

downloader: install
	$(BIN)/python -m services.downloader

clean:
	rm -rf $(VENV) deploy/kafka/libs build *.egg-info
