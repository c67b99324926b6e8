# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run dev test test-fast lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime  ## start gunicorn on 127.0.0.1:8001 with config.yaml
	BRIDGE_CONFIG=$(CONFIG) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

dev: $(VENV)/.runtime  ## Flask's development server with reload
	BRIDGE_CONFIG=$(CONFIG) $(BIN)/flask --app app run --port 8001 --debug

test: $(VENV)/.dev  ## install dev dependencies and run every test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-fast: $(VENV)/.dev  ## the inner loop: every test but the slow ones (real servers, fuzzing)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow"

bench: $(VENV)/.runtime  ## the benchmark (a few minutes); figures in bench/RESULTS.md
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
