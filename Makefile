# Two commands do all set-up: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Schemathesis over the whole OpenAPI document (tests/api/test_schemathesis.py): generated requests per
# operation and mode, and the seed that makes them reproducible. A deeper run: make test-api-fuzz.
SCHEMATHESIS_EXAMPLES ?= 10
SCHEMATHESIS_SEED ?= 15
export CONVEYOR_SCHEMATHESIS_EXAMPLES = $(SCHEMATHESIS_EXAMPLES)
export CONVEYOR_SCHEMATHESIS_SEED = $(SCHEMATHESIS_SEED)
# `make test` runs the suite in this many pytest processes (pytest-xdist), each module's tests in one
# of them with its stack (--dist loadfile), the slowest modules first (tests/conftest.py); 2 for the
# 2-core CI machine. TEST_PROCESSES=0: all in one process.
TEST_PROCESSES ?= 2

.PHONY: install run demo test test-fast test-api-fuzz lint bench bench-peers services browser screenshots worker api fake-provider clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv with the project and its dev dependencies

run: install  ## API + worker + private Redis over SQLite (embedded mode)
	$(BIN)/conveyor serve

demo: install  ## embedded mode answering with the simulated fake provider
	$(BIN)/conveyor serve --demo

services: browser  ## start local Redis (6379) and PostgreSQL (5432) when they are installed but stopped
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  echo "starting redis-server on 6379"; mkdir -p /var/lib/redis /var/log/redis; \
	  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
	    --dir /var/lib/redis --logfile /var/log/redis/ci.log; }
	@pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || { \
	  echo "starting PostgreSQL on 5432"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; }
	@for i in $$(seq 1 50); do pg_isready -h 127.0.0.1 -p 5432 -q && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null && exit 0; sleep 0.2; done; \
	  echo "Redis or PostgreSQL is still not reachable on 127.0.0.1; see README 'Running the tests'"; exit 1

browser:  ## Debian's chromium + chromium-driver for the web console's browser tests (apt, when missing)
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver (apt)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	      || echo "apt could not install chromium: the browser tests will be skipped"; \
	  else echo "no chromium: the browser tests will be skipped (as root on Debian: make browser)"; fi; }

screenshots: install  ## the web console's screenshots in docs/console/ (needs `make browser` and `make services`)
	$(BIN)/python -m tests.console.screenshots

test: lint  ## lint, then the whole suite (needs Redis on 6379 and PostgreSQL on 5432: `make services`)
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

test-api-fuzz: install  ## schemathesis only, deeper: make test-api-fuzz SCHEMATHESIS_EXAMPLES=500 SCHEMATHESIS_SEED=$$RANDOM
	$(BIN)/pytest tests/api/test_schemathesis.py --timeout 1800

test-fast: install  ## unit tests only (no services needed)
	$(BIN)/pytest tests/unit

lint: install  ## ruff, and the import contracts (the layers, pyproject.toml [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: install  ## benchmarks against the fake provider; figures printed beside their baseline (BASELINE=rev adds an A/B)
	$(BIN)/python -m bench.call_overhead $(if $(BASELINE),--baseline $(BASELINE))
	$(BIN)/python -m bench.inflight --jobs 1000 --latency-ms 2000 --slots 1100
	$(BIN)/python -m bench.inflight --jobs 5000 --latency-ms 10000 --slots 5500
	$(BIN)/python -m bench.batch --items 100000,10000,1000
	$(BIN)/python -m bench.stream_latency
	$(BIN)/python -m bench.ratelimit
	$(BIN)/python -m bench.tracing_overhead

bench-peers: install  ## the floor, LiteLLM's proxy (installed into .venv-litellm) and Conveyor, interleaved
	$(BIN)/python -m bench.peers

api: install
	$(BIN)/conveyor api

worker: install
	$(BIN)/conveyor worker

fake-provider: install
	$(BIN)/conveyor fake-provider --port 8765

clean:
	rm -rf $(VENV) .conveyor .pytest_cache .ruff_cache *.egg-info
