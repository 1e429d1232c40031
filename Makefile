# Two commands for a newcomer: `make run` (server + dev key) and `make test` (whole suite).
.PHONY: run test lint install clean bench bench-summary-cost bench-retrieval chaos

install:
	@scripts/bootstrap.sh

run: install
	.venv/bin/python -m devtools.serve

# Installs redis-server and nginx through apt when missing; tests start their own on free ports.
test:
	@scripts/bootstrap.sh redis-server nginx
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

lint: install
	.venv/bin/ruff check .

clean:
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info
