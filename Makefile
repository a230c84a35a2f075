# The two commands: `make demo` runs the main job, `make test` runs the whole suite.
# Both install everything first (scripts/setup.sh). `make test-unit` and `make lint` need only the Python venv.
.PHONY: setup venv demo test test-unit lint bench clean evaluate

setup:
	bash scripts/setup.sh

venv:
	bash scripts/setup.sh --python-only

demo: setup
	.venv/bin/bcfwatch demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy
	.venv/bin/pytest -p no:cacheprovider

# The broker-free tier: tests/unit (no Kafka, no Prometheus, no browser), under 2 minutes.
test-unit: venv
	.venv/bin/pytest -p no:cacheprovider tests/unit

lint: venv
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy

clean:
	rm -rf .venv build *.egg-info out

bench: setup
	.venv/bin/python -m bench.bench

evaluate: setup
	.venv/bin/bcfwatch evaluate --years 8 --setting all --seed 1 --markdown bench/evaluation.md
	.venv/bin/bcfwatch evaluate --metric all --years 10 --setting all --seed 1 --markdown bench/evaluation-metrics.md
