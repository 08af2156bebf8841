# Continuous AWS IAM compliance as an Airflow pipeline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/include
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install demo test lint run airflow sql stop bench clean

help:
	@echo "make demo     embedded PostgreSQL + emulated AWS organisation, one DAG run, a compliance summary"
	@echo "make test     install what is missing and run the whole test suite (ruff + pytest)"
	@echo "make run      one DAG run for today against the environment's connections and variables"
	@echo "make airflow  the Airflow UI on the embedded services"
	@echo "make sql Q=\"SELECT ...\"   query the embedded compliance database"
	@echo "make stop     stop the embedded services"

$(INSTALLED): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12), "Python 3.11 or 3.12 is required (pgserver has no wheels for newer versions); set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/python -m iam_audit.devenv.demo

lint: install
	$(BIN)/ruff check .

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

run: install
	$(BIN)/python -m iam_audit.devenv.cli run

airflow: install
	$(BIN)/python -m iam_audit.devenv.cli ui

sql: install
	$(BIN)/python -m iam_audit.devenv.cli sql "$(Q)"

stop: install
	$(BIN)/python -m iam_audit.devenv.cli stop

clean: stop
	rm -rf .devenv
