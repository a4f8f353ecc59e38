# Everything runs from the project's own virtual environment, built from uv.lock.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: venv test lint typecheck check demo clean

venv: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

test: venv
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint: venv
	.venv/bin/ruff check worker tests
	.venv/bin/ruff format --check worker tests

typecheck: venv
	.venv/bin/mypy

check: lint typecheck test

clean:
	rm -rf .venv .mypy_cache .pytest_cache .ruff_cache
