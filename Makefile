# The two commands: `make demo` runs the main job, `make test` runs the whole suite.
# Both install everything first (scripts/setup.sh). `make test-unit` and `make lint` need only the Python venv.
.PHONY: setup venv demo test test-unit lint bench clean evaluate images stack-up stack-health stack-down

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

# The compose stack with podman (docs/operations.md, "The compose stack"): images built from Debian, PyPI and
# Maven Central, then the stack started in dependency order once every health check passes.
images: setup
	bash compose/images/build.sh

stack-up: images
	.venv/bin/python compose/stack.py up $(if $(PROFILES),$(foreach p,$(PROFILES),--profile $(p)),)

stack-health:
	.venv/bin/python compose/stack.py health

stack-down:
	.venv/bin/python compose/stack.py down
