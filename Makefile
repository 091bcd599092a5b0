# Developer and CI entry points. Needs only python3 (3.11+), npm and Java 17+ on the machine:
# everything else goes into .venv, and DynamoDB Local into ~/.cache/streamodel (or
# $STREAMODEL_DYNAMODB_LOCAL_DIR).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp makes `make test` / `make demo` reinstall only when pyproject.toml changed.
STAMP := $(VENV)/.installed
# The lowest runtime versions pyproject.toml's bounds allow; `make test` runs the unit tests on
# them too (in their own venv), so the bounds are ones CI has proven.
LOWEST := .venv-lowest
LOWEST_PINS := boto3==1.34.0 botocore==1.34.0 marshmallow==4.4.0 blinker==1.9.0 tenacity==9.0.0
LOWEST_STAMP := $(LOWEST)/.installed

.PHONY: help install test test-lowest lint demo bench reliability clean

help:
	@echo "make install      create .venv, install streamodel[dev], fetch DynamoDB Local"
	@echo "make test         unit + integration tests (starts DynamoDB Local itself), and"
	@echo "                  the unit tests again on the lowest boto3/botocore allowed"
	@echo "make lint         ruff check, ruff format --check, mypy --strict"
	@echo "make demo         run examples/demo.py"
	@echo "make bench        run the benchmarks in tests/benchmarks"
	@echo "make reliability  fault-injection scenarios at full size; prints the figures table"
	@echo "make clean        remove .venv and caches"

install: $(STAMP)

$(STAMP): pyproject.toml
	if [ ! -x $(BIN)/python ]; then \
		$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
			|| { echo "streamodel needs Python 3.11+; run make PYTHON=python3.11" >&2; exit 1; }; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/streamodel local install
	touch $@

test: $(STAMP) test-lowest
	$(BIN)/python -m pytest -q

$(LOWEST_STAMP): pyproject.toml Makefile
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet $(LOWEST_PINS) pytest hypothesis 'moto[dynamodb]' trustme
	$(LOWEST)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -c 'import boto3, botocore; print("unit tests on boto3", boto3.__version__, "botocore", botocore.__version__)'
	$(LOWEST)/bin/python -m pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/python examples/demo.py

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	# The TLS rows' terminator: socat (C, OpenSSL) when it can be had, else a Python one.
	command -v socat >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -qq socat || { apt-get update -qq && apt-get install -y -qq socat; }; } \
		>/dev/null 2>&1; } || echo "no socat: the TLS rows use tests/support/tls.py" >&2
	if find tests/benchmarks -name 'test_*.py' -o -name '*_test.py' 2>/dev/null | grep -q .; then \
		$(BIN)/python -m pytest tests/benchmarks -q -s; \
	elif [ -f tests/benchmarks/run.py ]; then \
		$(BIN)/python tests/benchmarks/run.py; \
	else \
		echo "no benchmarks in tests/benchmarks" >&2; exit 1; \
	fi

reliability: $(STAMP)
	$(BIN)/python tests/reliability/run.py

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
