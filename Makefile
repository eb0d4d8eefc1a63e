PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: run test lint typecheck bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/scheduler run -c $(CONFIG)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check scheduler tests bench
	$(BIN)/ruff format --check scheduler tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy scheduler

test: lint typecheck
	$(BIN)/pytest -n 2 -q

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/triggers.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
