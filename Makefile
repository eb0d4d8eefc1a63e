PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: run install test test-fast system-packages lint typecheck bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The test extras include the package itself: after `make test` there is nothing to install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@if [ $(VENV)/.installed-test -nt pyproject.toml ]; then \
	    echo "$(VENV) has the scheduler (installed with the test extras)"; \
	else \
	    echo "$(BIN)/pip install -q -e ."; $(BIN)/pip install -q -e .; \
	fi
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

# .venv with the scheduler in it, and nothing else: after this, .venv/bin/scheduler exists.
install: $(VENV)/.installed

# The daemon in the foreground (Ctrl-C stops it). Another file: make run CONFIG=mine.toml
run: $(VENV)/.installed
	$(BIN)/scheduler run -c $(CONFIG)

# Chromium, systemd-analyze, PostgreSQL and zsh: installed when this is root on Debian,
# otherwise a stop at once with the command to run (before minutes of tests, not after).
system-packages:
	sh .ci/system-packages

lint: $(VENV)/.installed-test
	$(BIN)/ruff check scheduler tests bench
	$(BIN)/ruff format --check scheduler tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy scheduler tests

test: system-packages lint typecheck
	$(BIN)/pytest -n 2 --dist loadgroup -q

# The tests that start no subprocess and drive no browser (tests/conftest.py checks the
# markers): the quick loop while editing. More pytest options: make test-fast ARGS="-n 2 -x"
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -q -m "not integration and not browser" $(ARGS)

# Every figure at 10k, 100k and 1M jobs beside APScheduler (many minutes; not part of test).
# Quicker: make bench SIZES=10000,100000
SIZES ?= 10000,100000,1000000
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/all.py --sizes $(SIZES)
	$(BIN)/python bench/triggers.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
