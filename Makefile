# Two commands for a newcomer: `make run` (server + dev key) and `make test` (whole suite).
.PHONY: help run test lint install clean bench bench-summary-cost bench-retrieval bench-peers chaos

help:  ## this list
	@echo "make run       the server on :8080 under gunicorn (embedded store unless REDIS_URL is set); prints a dev key and an admin token"
	@echo "make test      the whole suite, as CI runs it (~8 min warm: single node, then the API suites on a Redis Cluster); installs redis-server, nginx, chromium via apt when missing"
	@echo "make lint      ruff"
	@echo "make bench     throughput and latency against the floor app (wrk, redis-server)"
	@echo "make bench-retrieval / bench-summary-cost / chaos   long-term memory, summary tokens, fault injection"
	@echo "make bench-peers  against the Redis Agent Memory Server (needs Python 3.12; ~6 min)"
	@echo "make install   only create .venv (first run: about a minute)"
	@echo "make clean     remove .venv and caches"

install:
	@scripts/bootstrap.sh

run: install
	.venv/bin/python -m devtools.serve

# Installs redis-server, nginx, chromium (the console's browser tests) and Docker (docker.io,
# docker-compose, debootstrap: tests/e2e/test_docker.py) through apt when
# missing; tests start their own servers on free ports.
test:
	@scripts/bootstrap.sh redis-server nginx chromium dockerd:docker.io docker-compose debootstrap
	.venv/bin/python -m pytest -q
	# The API, summarization and policy suites again, on a local 3-master Redis Cluster.
	RECOLLECT_TEST_REDIS=cluster .venv/bin/python -m pytest -q tests/api tests/cluster

bench:
	@scripts/bootstrap.sh redis-server wrk
	.venv/bin/python -m bench.run
	.venv/bin/python -m bench.summary_cost

chaos:
	@scripts/bootstrap.sh redis-server
	.venv/bin/python -m bench.chaos --seconds 300

# Long-term memory: retrieval and context latency ÷ GET, indexing throughput, bytes.
bench-retrieval:
	@scripts/bootstrap.sh redis-server
	.venv/bin/python -m bench.retrieval

bench-summary-cost:
	@scripts/bootstrap.sh redis-server
	.venv/bin/python -m bench.summary_cost

# Against the Redis Agent Memory Server (its own Python 3.12 venv, made on the first run).
bench-peers:
	@scripts/bootstrap.sh redis-server wrk
	.venv/bin/python -m bench.peers

lint: install
	.venv/bin/ruff check .

clean:
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info
