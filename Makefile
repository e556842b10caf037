# conveyor: `make demo` runs the main job end to end; `make test` runs the whole test suite.
# Both install what they need first (idempotently): Python packages into .venv, system tools with apt-get.

SHELL := /bin/bash
BIN := .venv/bin

.PHONY: demo test install system-deps lint bench clean

install:
	@scripts/install-python.sh test

system-deps:
	@scripts/install-system-deps.sh

demo: install system-deps
	$(BIN)/conveyor demo

test: lint system-deps
	$(BIN)/pytest

# Style, types (mypy --strict on src/conveyor) and the rooms' layering (import-linter contracts in pyproject.toml).
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: install system-deps
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/cli.py
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/signatures.py
	$(BIN)/python benchmarks/ui.py
	$(BIN)/python benchmarks/rollout.py
	$(BIN)/python benchmarks/scan.py

clean:
	rm -rf .venv .cache .pytest_cache results htmlcov
