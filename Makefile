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

test: install system-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install system-deps
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/build.py

clean:
	rm -rf .venv .cache .pytest_cache results htmlcov
