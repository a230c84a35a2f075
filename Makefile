# The two commands: `make demo` runs the main job, `make test` runs the whole suite.
# Both install everything first (scripts/setup.sh).
.PHONY: setup demo test lint bench clean evaluate

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/bcfwatch demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/pytest -p no:cacheprovider

lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports

clean:
	rm -rf .venv build *.egg-info out

bench: setup
	.venv/bin/python -m bench.bench

evaluate: setup
	.venv/bin/bcfwatch evaluate --years 6
